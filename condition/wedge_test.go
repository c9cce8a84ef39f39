//go:build linux

package condition_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
)

// Offsets of the documented layout (see condition.go) that the wedge
// tests below set to what a kill between two stores leaves behind.
const (
	layOccupied = 16  // the old occupied count, now reserved
	layBitmap   = 192 // occupancy bitmap; slots follow, padded to 64 bytes
	laySlots    = 256 // first slot of a table of at most 512 slots

	// A slot's state word: its low bits (layStMask) are the state.
	layStMask     = 7
	layStSleeping = 2
	layStNotified = 3
)

func u32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// deadWaiter makes a one-slot Condition whose slot is held by a waiter
// process that was then killed, and returns the Condition's memory.
func deadWaiter(t *testing.T) *setup {
	t.Helper()
	s := newSetup(t, "lock", 1)
	ch := proctest.Start(t, "waiter", s.path, s.kind, "0")
	waitFor(t, "waiter", 20*time.Second, func() bool { return s.c.State().Waiters == 1 })
	ch.Kill()
	<-ch.Done()
	return s
}

// TestWaiterKilledInRegister: a waiter killed inside register, after it set
// its bit in the bitmap and before it published its slot (and, in the old
// layout, before it raised the occupied count). The next Wait on the idle
// Condition must time out cleanly, not fail with ErrCorrupt ("occupied
// count and bitmap disagree") for ever.
func TestWaiterKilledInRegister(t *testing.T) {
	s := deadWaiter(t)
	mem := s.mem[offCond:]
	atomic.StoreUint32(u32(mem, layOccupied), 0) // the count was not raised yet
	st := u32(mem, laySlots)
	atomic.StoreUint32(st, atomic.LoadUint32(st)&^7) // nor the slot published
	for round := 0; round < 3; round++ {
		if err := s.c.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		ok, err := s.c.WaitTimeout(10 * time.Millisecond)
		s.c.Release()
		if ok || err != nil {
			t.Fatalf("round %d: WaitTimeout on an idle Condition = %v, %v; want false, nil", round, ok, err)
		}
	}
}

// TestWaiterKilledInFree: a waiter killed inside free, after it cleared its
// bit and (in the old layout) before it lowered the occupied count. The
// next Wait must time out cleanly, not fail with ErrTooManyWaiters with
// nobody waiting.
func TestWaiterKilledInFree(t *testing.T) {
	s := deadWaiter(t)
	mem := s.mem[offCond:]
	st := u32(mem, laySlots)
	atomic.StoreUint32(st, atomic.LoadUint32(st)&^7)                  // state free
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[layBitmap])), 0) // bit cleared
	atomic.StoreUint32(u32(mem, layOccupied), 1)                      // the count not lowered yet
	for round := 0; round < 3; round++ {
		if err := s.c.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		ok, err := s.c.WaitTimeout(10 * time.Millisecond)
		s.c.Release()
		if ok || err != nil {
			t.Fatalf("round %d: WaitTimeout on an idle Condition = %v, %v; want false, nil", round, ok, err)
		}
	}
	if st := s.c.State(); st.Waiters != 0 || st.Notified != 0 {
		t.Fatalf("State = %+v", st)
	}
}

// TestNotifierKilledBeforeWake: a notifier killed between marking a
// sleeping waiter notified and waking it (forged here: the mark without
// the wake) must not leave the waiter asleep until its timeout: the
// process's liveness checker wakes it within about one check interval.
func TestNotifierKilledBeforeWake(t *testing.T) {
	s := newSetup(t, "lock", 1)
	st := u32(s.mem[offCond:], laySlots)
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := s.c.Acquire(context.Background()); err != nil {
			done <- result{err: err}
			return
		}
		ok, err := s.c.WaitTimeout(30 * time.Second)
		s.c.Release()
		done <- result{ok, err}
	}()
	waitFor(t, "a sleeping waiter", 20*time.Second, func() bool { return atomic.LoadUint32(st)&layStMask == layStSleeping })
	time.Sleep(5 * checkEvery) // into the kernel, past the checker's first look
	old := atomic.LoadUint32(st)
	if !atomic.CompareAndSwapUint32(st, old, old&^layStMask|layStNotified) { // notified, and no wake
		t.Fatalf("slot state changed under the forged notify: %#x", atomic.LoadUint32(st))
	}
	start := time.Now()
	select {
	case r := <-done:
		if !r.ok || r.err != nil {
			t.Fatalf("WaitTimeout = %v, %v; want notified", r.ok, r.err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("woken %v after the notify", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiter notified without a wake still sleeps after 10 s")
	}
}
