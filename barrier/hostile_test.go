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
