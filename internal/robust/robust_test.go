package robust

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
)

func TestStatesAndValid(t *testing.T) {
	var w uint64
	m := New(&w, 0)
	if !Valid(w) || m.Load().Held {
		t.Fatal("zero word")
	}
	if err := m.Lock(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	s := m.Load()
	if !s.Held || s.Holder != proc.Self() || s.Waiters || !Valid(w) || !m.IsSelf() {
		t.Fatalf("locked: %+v", s)
	}
	if err := m.Lock(nil, time.Now().Add(30*time.Millisecond)); !errors.Is(err, futex.ErrTimeout) {
		t.Fatalf("relock: %v", err)
	}
	if !m.Load().Waiters {
		t.Fatal("a waiter that slept left no waiters bit")
	}
	if err := m.Unlock(); err != nil || w != 0 {
		t.Fatalf("unlock: %v, word %#x", err, w)
	}
	for _, bad := range []uint64{1 << 28, notRecoverable | 5, 0xffffffff, 1<<40 | 0} {
		if Valid(bad) {
			t.Errorf("Valid(%#x)", bad)
		}
	}
	for _, good := range []uint64{0, notRecoverable, proc.SelfPacked() | waiters | inconsistent} {
		if !Valid(good) {
			t.Errorf("!Valid(%#x)", good)
		}
	}
}

func TestTakeoverOfDeadHolder(t *testing.T) {
	dead := proc.ID{Pid: proc.MaxPid, Tag: 7} // no such process
	w := dead.Pack() | waiters
	m := New(&w, 10*time.Millisecond)
	start := time.Now()
	err := m.Lock(nil, time.Now().Add(5*time.Second))
	if !errors.Is(err, ErrOwnerDead) {
		t.Fatalf("Lock: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("slow takeover")
	}
	s := m.Load()
	if !s.Inconsistent || s.Holder != proc.Self() || !s.Waiters {
		t.Fatalf("after takeover: %+v", s)
	}
	if err := m.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := m.Consistent(); !errors.Is(err, ErrNotInconsistent) {
		t.Fatalf("second Consistent: %v", err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after recovery: %v %v", ok, err)
	}
}
