//go:build linux

package faults_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// Issue 12, cases 5 and 6: timeouts saturate (math.MaxInt64 waits until
// released, never fails) and never fire early, for every timed call of
// every object kind; and Options.CheckInterval = math.MaxInt64 does not
// break waits.

// A timedKind is one object kind's timed call, on an object that stays
// blocked until release is called. wait reports whether the call got what
// it waited for (false: timed out).
type timedKind struct {
	name  string
	setup func(t *testing.T, seg *shm.Segment, check time.Duration) (wait func(d time.Duration) (bool, error), release func())
}

var timedKinds = []timedKind{
	{"Semaphore", func(t *testing.T, seg *shm.Segment, _ time.Duration) (func(time.Duration) (bool, error), func()) {
		s := must(semaphore.Create(seg, "s", 0, nil))(t)
		return s.AcquireTimeout, func() { s.Release(1) }
	}},
	{"BoundedSemaphore", func(t *testing.T, seg *shm.Segment, _ time.Duration) (func(time.Duration) (bool, error), func()) {
		s := must(semaphore.CreateBounded(seg, "s", 1, nil))(t)
		if ok, _ := s.TryAcquire(); !ok {
			t.Fatal("TryAcquire failed")
		}
		return s.AcquireTimeout, func() { s.Release(1) }
	}},
	{"Event", func(t *testing.T, seg *shm.Segment, _ time.Duration) (func(time.Duration) (bool, error), func()) {
		e := must(event.Create(seg, "e", nil))(t)
		return func(d time.Duration) (bool, error) { return e.WaitTimeout(d), nil }, e.Set
	}},
	{"Lock", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		l := must(lock.Create(seg, "l", &lock.Options{CheckInterval: check}))(t)
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		return l.AcquireTimeout, func() { l.Release() }
	}},
	{"RLock", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		r := must(rlock.Create(seg, "r", &rlock.Options{CheckInterval: check}))(t)
		held, free, gone := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() { // an RLock belongs to a goroutine: hold it in another
			defer close(gone)
			r.Acquire(context.Background())
			close(held)
			<-free
			r.Release()
		}()
		<-held
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(free) }); <-gone })
		return r.AcquireTimeout, func() { once.Do(func() { close(free) }); <-gone }
	}},
	{"Condition", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		c := must(condition.Create(seg, "c", "", &condition.Options{CheckInterval: check}))(t)
		wait := func(d time.Duration) (bool, error) {
			if err := c.Acquire(context.Background()); err != nil {
				return false, err
			}
			ok, err := c.WaitTimeout(d)
			if rerr := c.Release(); err == nil {
				err = rerr
			}
			return ok, err
		}
		return wait, func() {
			c.Acquire(context.Background())
			c.NotifyAll()
			c.Release()
		}
	}},
	{"Barrier", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		b := must(barrier.Create(seg, "b", 2, &barrier.Options{CheckInterval: check}))(t)
		wait := func(d time.Duration) (bool, error) {
			_, err := b.WaitTimeout(d)
			if errors.Is(err, barrier.ErrTimedOut) {
				b.Reset()
				return false, nil
			}
			return err == nil, err
		}
		return wait, func() { b.Wait(context.Background()) }
	}},
	{"QueueGet", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		q := must(ringbuf.Create(seg, "q", 2, 8, &ringbuf.Options{CheckInterval: check}))(t)
		wait := func(d time.Duration) (bool, error) {
			_, err := q.GetTimeout(d)
			if errors.Is(err, ringbuf.ErrEmpty) {
				return false, nil
			}
			return err == nil, err
		}
		return wait, func() { q.Put(context.Background(), []byte("x")) }
	}},
	{"QueuePut", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		q := must(ringbuf.Create(seg, "q", 2, 8, &ringbuf.Options{CheckInterval: check}))(t)
		for q.TryPut([]byte("fill")) == nil {
		}
		wait := func(d time.Duration) (bool, error) {
			err := q.PutTimeout([]byte("x"), d)
			if errors.Is(err, ringbuf.ErrFull) {
				return false, nil
			}
			return err == nil, err
		}
		return wait, func() { q.TryGet() }
	}},
	{"PipeRecv", func(t *testing.T, seg *shm.Segment, check time.Duration) (func(time.Duration) (bool, error), func()) {
		a := must(ringbuf.CreatePipe(seg, "p", &ringbuf.PipeOptions{CheckInterval: check}))(t)
		b := must(ringbuf.OpenPipe(seg, "p", 1, &ringbuf.PipeOptions{CheckInterval: check}))(t)
		buf := make([]byte, 64)
		wait := func(d time.Duration) (bool, error) {
			_, err := b.RecvTimeout(buf, d)
			if errors.Is(err, ringbuf.ErrEmpty) {
				return false, nil
			}
			return err == nil, err
		}
		return wait, func() { a.Send(context.Background(), []byte("x")) }
	}},
}

// must turns (v, err) into a function of t that fails on err.
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// TestHugeTimeouts: a timeout of math.MaxInt64 waits (it neither fails nor
// returns at once) until another goroutine releases the object, with the
// default check interval and with CheckInterval = math.MaxInt64.
func TestHugeTimeouts(t *testing.T) {
	for _, k := range timedKinds {
		for _, check := range []time.Duration{0, math.MaxInt64} {
			name := k.name
			if check != 0 {
				name += "/CheckIntervalMax"
			}
			t.Run(name, func(t *testing.T) {
				seg := newSeg(t, 1<<20)
				wait, release := k.setup(t, seg, check)
				type result struct {
					ok  bool
					err error
				}
				res := make(chan result, 1)
				go func() {
					ok, err := wait(math.MaxInt64)
					res <- result{ok, err}
				}()
				select {
				case r := <-res:
					t.Fatalf("AcquireTimeout(math.MaxInt64)-like call returned at once: (%v, %v)", r.ok, r.err)
				case <-time.After(150 * time.Millisecond):
				}
				release()
				select {
				case r := <-res:
					if !r.ok || r.err != nil {
						t.Fatalf("released call returned (%v, %v), want (true, nil)", r.ok, r.err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("call not released")
				}
			})
		}
	}
}

// TestTimeoutsNeverEarly: 100,000 short timed waits per kind (10,000 under
// -short), on objects nobody releases, by 8 goroutines each with its own
// object: every timeout reported must have lasted its whole duration by
// the monotonic clock. The timeouts (20-300 µs) are long enough to reach
// the kernel's sleep, where an early timeout came from.
func TestTimeoutsNeverEarly(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	const workers = 8
	for _, k := range timedKinds {
		t.Run(k.name, func(t *testing.T) {
			waits := make([]func(time.Duration) (bool, error), workers)
			for i := range waits {
				waits[i], _ = k.setup(t, newSeg(t, 1<<20), 0)
			}
			var early, timeouts atomic.Int64
			var worst atomic.Int64
			var wg sync.WaitGroup
			for _, wait := range waits {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n / workers {
						d := time.Duration(20+rand.IntN(280)) * time.Microsecond
						start := time.Now()
						ok, err := wait(d)
						el := time.Since(start)
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							t.Error("an unreleased object was acquired")
							return
						}
						timeouts.Add(1)
						if el < d {
							early.Add(1)
							if e := int64(d - el); e > worst.Load() {
								worst.Store(e)
							}
						}
					}
				}()
			}
			wg.Wait()
			if early.Load() != 0 {
				t.Fatalf("%d of %d timeouts early, by up to %v", early.Load(), timeouts.Load(), time.Duration(worst.Load()))
			}
			if timeouts.Load() != int64(n/workers*workers) {
				t.Fatalf("%d timeouts of %d calls", timeouts.Load(), n)
			}
		})
	}
}
