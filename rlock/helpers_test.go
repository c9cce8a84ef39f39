//go:build linux

package rlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

// memSize is the size of the shared file the tests use: the RLock at 0,
// test words from offset 64 on.
const memSize = 4096

// sharedMem maps a fresh /dev/shm file of memSize bytes; see proctest.SharedFile.
func sharedMem(tb testing.TB) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, memSize)
	return mem, path
}

// mapFile maps the file at path (child side); see proctest.MapFile.
func mapFile(path string) ([]byte, error) { return proctest.MapFile(path) }

// word returns the i-th test word (after the RLock).
func word(mem []byte, i int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[64+8*i])) }

func newRLock(tb testing.TB) (*rlock.RLock, []byte, string) {
	tb.Helper()
	mem, path := sharedMem(tb)
	r, err := rlock.Init(mem[:rlock.Size], &rlock.Options{CheckInterval: 20 * time.Millisecond, Registry: regtest.Registry(tb, path)})
	if err != nil {
		tb.Fatal(err)
	}
	return r, mem, path
}

func attachChild(path string) (*rlock.RLock, []byte, error) {
	mem, err := mapFile(path)
	if err != nil {
		return nil, nil, err
	}
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, nil, err
	}
	r, err := rlock.Attach(mem[:rlock.Size], &rlock.Options{CheckInterval: 20 * time.Millisecond, Registry: reg})
	return r, mem, err
}

// waitWord polls until *w == v or the timeout passes.
func waitWord(w *uint64, v uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint64(w) != v {
		if time.Now().After(deadline) {
			return fmt.Errorf("word is %d, want %d after %v", atomic.LoadUint64(w), v, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func errName(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, rlock.ErrOwnerDead):
		return "ownerdead"
	case errors.Is(err, rlock.ErrNotRecoverable):
		return "notrecoverable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return err.Error()
}

func TestMain(m *testing.M) {
	proctest.Register("stats-hold", childStatsHold)
	// holder PATH LEVEL: acquire at LEVEL, print "held", wait for word 0
	// to become 1, release LEVEL times, print "released".
	proctest.Register("holder", func(args []string) error {
		r, mem, err := attachChild(args[0])
		if err != nil {
			return err
		}
		level, _ := strconv.Atoi(args[1])
		for i := 0; i < level; i++ {
			if err := r.Acquire(context.Background()); err != nil {
				return err
			}
		}
		fmt.Println("held", r.Level())
		if err := waitWord(word(mem, 0), 1, 30*time.Second); err != nil {
			return err
		}
		for i := 0; i < level; i++ {
			if err := r.Release(); err != nil {
				return err
			}
		}
		fmt.Println("released")
		return nil
	})
	// contender PATH: TryAcquire, AcquireTimeout(50ms), then Acquire; print
	// each result; report whether word 1 (set by the holder before its
	// release) was set when the Acquire returned; release.
	proctest.Register("contender", func(args []string) error {
		r, mem, err := attachChild(args[0])
		if err != nil {
			return err
		}
		return contend(r, word(mem, 1), func(s string) { fmt.Println(s) })
	})
	// killed PATH LEVEL: acquire at LEVEL, print "held", sleep until killed.
	proctest.Register("killed", func(args []string) error {
		r, _, err := attachChild(args[0])
		if err != nil {
			return err
		}
		level, _ := strconv.Atoi(args[1])
		for i := 0; i < level; i++ {
			if err := r.Acquire(context.Background()); err != nil {
				return err
			}
		}
		fmt.Println("held", r.Level())
		time.Sleep(time.Hour)
		return nil
	})
	// next PATH: Acquire with a 5 s deadline; print the error name and the
	// level; release without Consistent; print the release error.
	proctest.Register("next", func(args []string) error {
		r, _, err := attachChild(args[0])
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err = r.Acquire(ctx)
		fmt.Println(errName(err), r.Level(), time.Since(start) < time.Second)
		fmt.Println("release", errName(r.Release()))
		return nil
	})
	// hammer PATH GOROUTINES ITERS: each goroutine increments word 2 ITERS
	// times under the RLock taken twice (recursively), checking exclusion
	// with word 3 as an activity counter.
	proctest.Register("hammer", func(args []string) error {
		r, mem, err := attachChild(args[0])
		if err != nil {
			return err
		}
		gs, _ := strconv.Atoi(args[1])
		iters, _ := strconv.Atoi(args[2])
		return hammer(r, mem, gs, iters)
	})
	// segtry SEGMENT NAME: open the RLock by name, TryAcquire, print the
	// result, release.
	proctest.Register("segtry", func(args []string) error {
		seg, err := shm.Open(args[0], nil)
		if err != nil {
			return err
		}
		defer seg.Close()
		r, err := rlock.Open(seg, args[1], nil)
		if err != nil {
			return err
		}
		ok, err := r.TryAcquire()
		fmt.Println("try", ok, errName(err))
		if ok {
			return r.Release()
		}
		return nil
	})
	proctest.Main(m)
}

// contend is the contender role's body, shared with the in-process
// goroutine version so that both are held to the same script.
func contend(r *rlock.RLock, released *uint64, out func(string)) error {
	ok, err := r.TryAcquire()
	out(fmt.Sprint("try ", ok, " ", errName(err)))
	ok, err = r.AcquireTimeout(50 * time.Millisecond)
	out(fmt.Sprint("timeout ", ok, " ", errName(err)))
	err = r.Release()
	out(fmt.Sprint("release-not-owner ", errors.Is(err, rlock.ErrNotOwner), " ", errors.Is(err, rlock.ErrNotLocked)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.Acquire(ctx)
	out(fmt.Sprint("acquire ", errName(err), " after-release ", atomic.LoadUint64(released) == 1, " level ", r.Level()))
	if err != nil {
		return err
	}
	return r.Release()
}

func hammer(r *rlock.RLock, mem []byte, gs, iters int) error {
	errc := make(chan error, gs)
	for g := 0; g < gs; g++ {
		go func() {
			for i := 0; i < iters; i++ {
				if err := r.Acquire(context.Background()); err != nil {
					errc <- err
					return
				}
				if err := r.Acquire(context.Background()); err != nil {
					errc <- err
					return
				}
				if n := atomic.AddUint64(word(mem, 3), 1); n != 1 {
					errc <- fmt.Errorf("%d holders inside", n)
					return
				}
				v := atomic.LoadUint64(word(mem, 2))
				atomic.StoreUint64(word(mem, 2), v+1) // a lost update if exclusion fails
				atomic.AddUint64(word(mem, 3), ^uint64(0))
				if err := r.Release(); err != nil {
					errc <- err
					return
				}
				if err := r.Release(); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for g := 0; g < gs; g++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}
