//go:build linux

package faults_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// Leaks: every Open/Close cycle of a segment and each object kind in it
// gives back its file descriptors and mappings. TestMain checks, after
// the run, that no segment the tests named is left in /dev/shm.

// fdsAndMaps returns the number of open descriptors and the lines of
// /proc/self/maps that name path.
func fdsAndMaps(t *testing.T, path string) (fds int, maps []string) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, path) {
			maps = append(maps, l)
		}
	}
	return len(ents), maps
}

// mapsAfterGC returns the mappings of path left once the garbage collector
// has collected the object handles dropped so far: a segment's mapping
// stays until the last handle placed in it is unreachable (shm.Keep), and
// cleanups run in the background after a collection, so it collects and
// looks again for up to 2 s.
func mapsAfterGC(t *testing.T, path string) (fds int, maps []string) {
	t.Helper()
	last := -1
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		runtime.GC()
		// The last reference unmaps, then leaves the process registry
		// (closing its descriptor); handles of earlier tests' segments
		// are collected meanwhile too: wait until nothing points at path
		// and the count holds still between two collections.
		open := len(openFDTo(path))
		fds, maps = fdsAndMaps(t, path)
		if len(maps) == 0 && open == 0 && fds == last || time.Now().After(end) {
			return fds, maps
		}
		last = fds
	}
}

// openFDTo lists descriptors of this process that point at path.
func openFDTo(path string) []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var r []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, path) {
			r = append(r, e.Name()+" -> "+l)
		}
	}
	return r
}

// kindCycles opens the segment, opens and uses the object of each kind,
// closes what has a Close, and closes the segment.
var kindCycles = map[string]struct {
	create func(seg *shm.Segment) error
	use    func(seg *shm.Segment) error
}{
	"lock": {func(s *shm.Segment) error { _, err := lock.Create(s, "o", nil); return err },
		func(s *shm.Segment) error {
			l, err := lock.Open(s, "o", nil)
			if err == nil {
				l.TryAcquire()
				err = l.Release()
			}
			return err
		}},
	"rlock": {func(s *shm.Segment) error { _, err := rlock.Create(s, "o", nil); return err },
		func(s *shm.Segment) error {
			r, err := rlock.Open(s, "o", nil)
			if err == nil {
				r.TryAcquire()
				err = r.Release()
			}
			return err
		}},
	"semaphore": {func(s *shm.Segment) error { _, err := semaphore.Create(s, "o", 1, nil); return err },
		func(s *shm.Segment) error {
			x, err := semaphore.Open(s, "o", nil)
			if err == nil {
				x.TryAcquire()
				err = x.Release(1)
			}
			return err
		}},
	"event": {func(s *shm.Segment) error { _, err := event.Create(s, "o", nil); return err },
		func(s *shm.Segment) error {
			e, err := event.Open(s, "o", nil)
			if err == nil {
				e.Set()
				e.Clear()
			}
			return err
		}},
	"barrier": {func(s *shm.Segment) error {
		b, err := barrier.Create(s, "o", 1, nil)
		if err == nil {
			err = b.Close()
		}
		return err
	},
		func(s *shm.Segment) error {
			b, err := barrier.Open(s, "o", nil)
			if err == nil {
				b.Wait(context.Background())
				err = b.Close()
			}
			return err
		}},
	"condition": {func(s *shm.Segment) error { _, err := condition.Create(s, "o", "", nil); return err },
		func(s *shm.Segment) error {
			c, err := condition.Open(s, "o", nil)
			if err == nil {
				c.Acquire(context.Background())
				c.WaitTimeout(time.Millisecond)
				c.NotifyAll()
				err = c.Release()
			}
			return err
		}},
	"value": {func(s *shm.Segment) error { _, err := value.Create(s, "o", quad{}, nil); return err },
		func(s *shm.Segment) error {
			v, err := value.Open[quad](s, "o", nil)
			if err == nil {
				v.Store(quad{1, 2, 3, 4})
				_, err = v.Update(func(q *quad) { q.A++ })
			}
			return err
		}},
	"array": {func(s *shm.Segment) error { _, err := array.Create[int64](s, "o", 64, nil, nil); return err },
		func(s *shm.Segment) error {
			a, err := array.Open[int64](s, "o", nil)
			if err == nil {
				a.Set(1, a.At(0)+1)
			}
			return err
		}},
	"queue": {func(s *shm.Segment) error { _, err := ringbuf.CreateJoinable(s, "o", 16, 16, nil); return err },
		func(s *shm.Segment) error {
			q, err := ringbuf.OpenJoinable(s, "o", nil)
			if err == nil {
				q.TryPut([]byte("x"))
				q.TryGet()
				err = q.TaskDone()
			}
			return err
		}},
	"pipe": {func(s *shm.Segment) error {
		c, err := ringbuf.CreatePipe(s, "o", &ringbuf.PipeOptions{Capacity: 1024})
		if err == nil {
			err = c.Detach()
		}
		return err
	},
		func(s *shm.Segment) error {
			c0, err := ringbuf.OpenPipe(s, "o", 0, nil)
			if err != nil {
				return err
			}
			c1, err := ringbuf.OpenPipe(s, "o", 1, nil)
			if err != nil {
				return err
			}
			c1.TrySend([]byte("hi"))
			c0.TryRecv(make([]byte, 8))
			// Detach, not Close: the next cycle claims the ends again.
			c0.Detach()
			return c1.Detach()
		}},
}

func TestCloseReleasesDescriptorsAndMappings(t *testing.T) {
	for kind, kc := range kindCycles {
		t.Run(kind, func(t *testing.T) {
			name := proctest.TempName(t)
			seg, err := shm.Create(name, &shm.Options{Size: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			path := seg.Path()
			if err := kc.create(seg); err != nil {
				t.Fatal(err)
			}
			if err := seg.Close(); err != nil {
				t.Fatal(err)
			}
			cycle := func() {
				s, err := shm.Open(name, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := kc.use(s); err != nil {
					t.Fatalf("using the %s: %v", kind, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
			}
			cycle() // warm up: the runtime may grow once
			fds, maps := mapsAfterGC(t, path)
			if len(maps) != 0 {
				t.Fatalf("mapping left after Close: %v", maps)
			}
			const cycles = 20
			for range cycles {
				cycle()
			}
			fds2, maps2 := mapsAfterGC(t, path)
			if fds2 != fds {
				t.Errorf("%d descriptors before %d cycles, %d after; to the segment: %v", fds, cycles, fds2, openFDTo(path))
			}
			if len(maps2) != 0 {
				t.Errorf("mappings of the segment left after Close: %v", maps2)
			}
		})
	}
}

// TestAnonymousSegmentCloseReleases: the memfd of an anonymous segment and
// its mapping go away with Close, also when a second handle is opened on
// its file with OpenFile.
func TestAnonymousSegmentCloseReleases(t *testing.T) {
	fds, maps := fdsAndMaps(t, "memfd:"+shm.AnonymousName)
	for range 20 {
		seg, err := shm.CreateAnonymous(0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lock.Create(seg, "l", nil); err != nil {
			t.Fatal(err)
		}
		other, err := shm.OpenFile(seg.File())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lock.Open(other, "l", nil); err != nil {
			t.Fatal(err)
		}
		other.Close()
		seg.Close()
	}
	fds2, maps2 := mapsAfterGC(t, "memfd:"+shm.AnonymousName)
	if fds2 != fds || len(maps2) != len(maps) {
		t.Errorf("descriptors %d -> %d, memfd mappings %d -> %d: %v", fds, fds2, len(maps), len(maps2), maps2)
	}
}
