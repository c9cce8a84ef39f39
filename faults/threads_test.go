//go:build linux

package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// The thread budget: goroutines blocked on mpipc objects must not each hold
// an OS thread (a Go program dies at 10,000). These tests put many
// goroutines on few objects; hub_test.go puts 10,000 goroutines on 10,000
// objects of each kind, Condition included.

const blockedGoroutines = 10000

// osThreads reads Threads: from /proc/self/status.
func osThreads(tb testing.TB) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no Threads: in /proc/self/status")
	return 0
}

// threadBudget starts n goroutines that each call block(i), waits until all
// have entered it and settled, calls release, and waits for all to return.
// It samples the thread count all along and fails if it exceeds the count
// before it (base) by more than limit: the Go runtime keeps, idle, the
// threads earlier tests made (the futex hub's among them).
func threadBudget(t *testing.T, n, limit int, block func(i int) error, release func()) {
	t.Helper()
	base := osThreads(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if c := int64(osThreads(t)); c > peak.Load() {
				peak.Store(c)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	var entered, done atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		go func() {
			entered.Add(1)
			if err := block(i); err != nil {
				errs <- err
			}
			done.Add(1)
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for entered.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let them spin out and sleep
	if d := done.Load(); d != 0 {
		t.Errorf("%d goroutines returned before the release", d)
	}
	blocked := osThreads(t)
	release()
	for done.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a blocked goroutine failed: %v", err)
	}
	if d := done.Load(); d != int64(n) {
		t.Fatalf("only %d of %d goroutines completed after the release", d, n)
	}
	t.Logf("%d goroutines: threads %d before, %d while blocked, peak %d (limit %d)", n, base, blocked, peak.Load(), limit)
	if lim := base + limit; peak.Load() > int64(lim) {
		t.Errorf("peak of %d OS threads, limit %d", peak.Load(), lim)
	}
}

func newSeg(t *testing.T, size int64) *shm.Segment {
	t.Helper()
	seg, err := shm.Create(proctest.TempName(t), &shm.Options{Size: size, MaxObjects: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg
}

func TestThreadBudgetLock(t *testing.T) {
	seg := newSeg(t, 1<<20)
	l, err := lock.Create(seg, "l", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Acquire(context.Background())
	threadBudget(t, blockedGoroutines, 64, func(int) error {
		if err := l.Acquire(context.Background()); err != nil {
			return err
		}
		return l.Release()
	}, func() { l.Release() })
}

func TestThreadBudgetSemaphore(t *testing.T) {
	seg := newSeg(t, 1<<20)
	s, err := semaphore.Create(seg, "s", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	threadBudget(t, blockedGoroutines, 64, func(int) error { return s.Acquire(context.Background()) },
		func() {
			if err := s.Release(blockedGoroutines); err != nil {
				t.Error(err)
			}
		})
	if v := s.Value(); v != 0 {
		t.Errorf("value %d after every permit was taken", v)
	}
}

func TestThreadBudgetQueue(t *testing.T) {
	seg := newSeg(t, 4<<20)
	q, err := ringbuf.Create(seg, "q", 1024, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	threadBudget(t, blockedGoroutines, 64, func(int) error {
		b, err := q.Get(context.Background())
		if err == nil && len(b) == 8 {
			got.Add(1)
		}
		return err
	}, func() {
		// Items arrive from another goroutine, a capacity at a time.
		for i := range blockedGoroutines {
			if err := q.Put(context.Background(), []byte(fmt.Sprintf("%08d", i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	if got.Load() != blockedGoroutines {
		t.Errorf("%d items received", got.Load())
	}
}

func TestThreadBudgetEvent(t *testing.T) {
	seg := newSeg(t, 1<<20)
	e, err := event.Create(seg, "e", nil)
	if err != nil {
		t.Fatal(err)
	}
	threadBudget(t, blockedGoroutines, 64, func(int) error { return e.Wait(context.Background()) }, e.Set)
}

// TestThreadBudgetManyObjects: 10,000 goroutines over 100 objects (Locks,
// Semaphores, Queues and Events, 100 goroutines each) stay under 200 threads:
// about one sleeping thread per object.
func TestThreadBudgetManyObjects(t *testing.T) {
	const objects = 100
	per := blockedGoroutines / objects
	seg := newSeg(t, 8<<20)
	var blocks []func() error
	var releases []func()
	for o := range objects {
		name := fmt.Sprint("o", o)
		switch o % 4 {
		case 0:
			l, err := lock.Create(seg, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			l.Acquire(context.Background())
			blocks = append(blocks, func() error {
				if err := l.Acquire(context.Background()); err != nil {
					return err
				}
				return l.Release()
			})
			releases = append(releases, func() { l.Release() })
		case 1:
			s, err := semaphore.Create(seg, name, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, func() error { return s.Acquire(context.Background()) })
			releases = append(releases, func() { s.Release(per) })
		case 2:
			q, err := ringbuf.Create(seg, name, 128, 8, nil)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, func() error { _, err := q.Get(context.Background()); return err })
			releases = append(releases, func() {
				go func() {
					for range per {
						q.Put(context.Background(), []byte("x"))
					}
				}()
			})
		case 3:
			e, err := event.Create(seg, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, func() error { return e.Wait(context.Background()) })
			releases = append(releases, e.Set)
		}
	}
	threadBudget(t, blockedGoroutines, 200, func(i int) error { return blocks[i%objects]() },
		func() {
			for _, r := range releases {
				r()
			}
		})
}
