//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
)

// TestHostileDrainingCount: a peer writes a draining state word whose count
// is above what a round releases (the layout is documented: count in bits
// 3..12, draining bit 1). The waiter must get ErrCorrupt, never an index
// outside 0..Parties()-1 with a nil error.
func TestHostileDrainingCount(t *testing.T) {
	for _, c := range []uint32{2, 3, 1000, 1023} {
		_, mem, b := newBarrier(t, 2, nil)
		type res struct {
			idx int
			err error
		}
		done := make(chan res, 1)
		go func() {
			idx, err := b.WaitTimeout(10 * time.Second)
			done <- res{idx, err}
		}()
		waitFor(t, "the first party to arrive", func() bool { return b.NWaiting() == 1 })
		w := (*uint32)(unsafe.Pointer(&mem[0]))
		const countShift, countMask, draining = 3, 1023 << 3, 2
		for {
			old := atomic.LoadUint32(w)
			if atomic.CompareAndSwapUint32(w, old, old&^countMask|c<<countShift|draining) {
				break
			}
		}
		futex.WakeAll(w)
		select {
		case r := <-done:
			if !errors.Is(r.err, shm.ErrCorrupt) {
				t.Fatalf("count %d: Wait returned index %d, error %v; want shm.ErrCorrupt", c, r.idx, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("count %d: Wait still blocked", c)
		}
	}
}

// TestHostileCountErasedThenCancelled: a peer erases this party's arrival
// (count 0 in its round) and the party's context ends. There is no round
// outcome to wait for: Wait must return shm.ErrCorrupt, not wait forever.
func TestHostileCountErasedThenCancelled(t *testing.T) {
	_, mem, b := newBarrier(t, 2, &barrier.Options{CheckInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := b.Wait(ctx)
		done <- err
	}()
	waitFor(t, "the first party to arrive", func() bool { return b.NWaiting() == 1 })
	w := (*uint32)(unsafe.Pointer(&mem[0]))
	const countMask = 1023 << 3
	for {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&^countMask) {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, shm.ErrCorrupt) {
			t.Fatalf("Wait returned %v, want shm.ErrCorrupt", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still blocked 5 s after its context ended")
	}
}

// TestHostileForgedLastArrival: a peer writes "the last party arrived"
// (count == parties, not draining) into the round a party waits in, and
// keeps it there. A timed or cancelled Wait waits for the round's outcome
// only a short grace (50 ms) past its deadline, then breaks the barrier.
func TestHostileForgedLastArrival(t *testing.T) {
	for _, how := range []string{"timeout", "context"} {
		t.Run(how, func(t *testing.T) {
			_, mem, b := newBarrier(t, 2, &barrier.Options{CheckInterval: 5 * time.Millisecond})
			const d = 30 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			type res struct {
				err     error
				elapsed time.Duration
			}
			done := make(chan res, 1)
			go func() {
				start := time.Now()
				var err error
				if how == "timeout" {
					_, err = b.WaitTimeout(d)
				} else {
					_, err = b.Wait(ctx)
				}
				done <- res{err, time.Since(start)}
			}()
			waitFor(t, "the first party to arrive", func() bool { return b.NWaiting() == 1 })
			w := (*uint32)(unsafe.Pointer(&mem[0]))
			const countShift, countMask = 3, 1023 << 3
			for {
				old := atomic.LoadUint32(w)
				if atomic.CompareAndSwapUint32(w, old, old&^countMask|2<<countShift) {
					break
				}
			}
			select {
			case r := <-done:
				want := error(barrier.ErrTimedOut)
				if how == "context" {
					want = context.DeadlineExceeded
				}
				if !errors.Is(r.err, want) {
					t.Errorf("Wait returned %v, want %v", r.err, want)
				}
				if r.elapsed < d || r.elapsed > d+50*time.Millisecond+100*time.Millisecond {
					t.Errorf("Wait returned after %v, want %v plus the 50 ms grace (+100 ms)", r.elapsed, d)
				}
				if !b.Broken() {
					t.Error("the barrier is not broken after the grace ran out")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Wait still blocked 5 s after its deadline")
			}
		})
	}
}
