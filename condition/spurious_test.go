//go:build linux

package condition

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
)

func newHeapCondition(tb testing.TB, slots int) *Condition {
	tb.Helper()
	n := SizeOf(slots)
	buf := make([]uint64, n/8+8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), n)
	c, err := Init(mem, nil, &Options{Slots: slots})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// sleepers returns how many slots are in the sleeping state.
func (c *Condition) sleepers() int {
	n := 0
	for i := 0; i < c.nslots; i++ {
		if atomic.LoadUint32(c.state(i))&stMask == stSleeping {
			n++
		}
	}
	return n
}

// wakeAllSlots makes kernel-level wakeups on every slot word, as a
// spurious wakeup would.
func (c *Condition) wakeAllSlots(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < c.nslots; i++ {
			futex.WakeAll(c.state(i))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestSpuriousWakeups: futex wakeups without a Notify never end a Wait or
// a WaitTimeout before its time.
func TestSpuriousWakeups(t *testing.T) {
	c := newHeapCondition(t, 4)
	type result struct {
		ok  bool
		err error
		el  time.Duration
	}
	res := make(chan result, 1)
	go func() {
		c.Acquire(context.Background())
		start := time.Now()
		ok, err := c.WaitTimeout(400 * time.Millisecond)
		res <- result{ok, err, time.Since(start)}
		c.Release()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.sleepers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("waiter never slept")
		}
		time.Sleep(time.Millisecond)
	}
	c.wakeAllSlots(200 * time.Millisecond)
	r := <-res
	if r.ok || r.err != nil || r.el < 400*time.Millisecond {
		t.Fatalf("WaitTimeout(400ms) under spurious wakeups = %v, %v after %v", r.ok, r.err, r.el)
	}

	werr := make(chan error, 1)
	go func() {
		c.Acquire(context.Background())
		werr <- c.Wait(context.Background())
		c.Release()
	}()
	for c.sleepers() != 1 {
		time.Sleep(time.Millisecond)
	}
	c.wakeAllSlots(150 * time.Millisecond)
	select {
	case err := <-werr:
		t.Fatalf("Wait returned %v without a Notify", err)
	default:
	}
	c.Acquire(context.Background())
	c.Notify(1)
	c.Release()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}
