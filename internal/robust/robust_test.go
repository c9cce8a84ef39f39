//go:build linux

package robust

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
)

func TestStatesAndValid(t *testing.T) {
	var w uint64
	m := New(&w, nil, 0)
	if !Valid(w) || m.Load().Held {
		t.Fatal("zero word")
	}
	if err := m.Lock(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	s := m.Load()
	if !s.Held || s.Holder != m.Registry().Self() || s.Waiters || !Valid(w) || !m.IsSelf() {
		t.Fatalf("locked: %+v", s)
	}
	if err := m.Lock(context.Background(), time.Now().Add(30*time.Millisecond)); !errors.Is(err, futex.ErrTimeout) {
		t.Fatalf("relock: %v", err)
	}
	if !m.Load().Waiters {
		t.Fatal("a waiter that slept left no waiters bit")
	}
	if err := m.Unlock(); err != nil || w != 0 {
		t.Fatalf("unlock: %v, word %#x", err, w)
	}
	for _, bad := range []uint64{1 << 28, notRecoverable | 5, 0xffffffff, 1 << 40} {
		if Valid(bad) {
			t.Errorf("Valid(%#x)", bad)
		}
	}
	for _, good := range []uint64{0, notRecoverable, proc.Blind().SelfPacked() | waiters | inconsistent} {
		if !Valid(good) {
			t.Errorf("!Valid(%#x)", good)
		}
	}
}

// testRegistry attaches to a registry of 4 slots in a file of its own.
func testRegistry(t *testing.T) *proc.Registry {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "mpipc-test-robust-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	defer f.Close()
	if err := f.Truncate(4 * proc.SlotSize); err != nil {
		t.Fatal(err)
	}
	r, err := proc.Attach(f, f.Name(), 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Release() })
	return r
}

func TestTakeoverOfDeadHolder(t *testing.T) {
	dead := proc.ID{Slot: 4, Gen: 7} // a slot nobody holds
	w := dead.Pack() | waiters
	m := New(&w, testRegistry(t), 10*time.Millisecond)
	start := time.Now()
	err := m.Lock(context.Background(), time.Now().Add(5*time.Second))
	if !errors.Is(err, ErrOwnerDead) {
		t.Fatalf("Lock: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("slow takeover")
	}
	s := m.Load()
	if !s.Inconsistent || s.Holder != m.Registry().Self() || !s.Waiters {
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

// TestCheckerOneLookupPerHolder: 1,000 goroutines blocked on locks of one
// live holder cost one registry lookup per check, not one each, and no
// wake; when the words come to name a dead holder (without a wake), every
// waiter takes its lock over within about one interval.
func TestCheckerOneLookupPerHolder(t *testing.T) {
	const n, check = 1000, 10 * time.Millisecond
	reg := testRegistry(t)
	words := make([]uint64, n)
	ms := make([]Mutex, n)
	res := make(chan error, n)
	for i := range words {
		words[i] = reg.SelfPacked()
		ms[i] = New(&words[i], reg, check)
		m := &ms[i]
		go func() { res <- m.Lock(context.Background(), time.Now().Add(time.Minute)) }()
	}
	// A waiter woken while the holder lives sleeps again, which its
	// handle counts.
	sleeps := func() (n uint64) {
		for i := range ms {
			n += ms[i].Stats().Waits
		}
		return n
	}
	for i := range words {
		for atomic.LoadUint64(&words[i])&waiters == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(2 * check)
	l0, w0 := checker.lookups.Load(), sleeps()
	time.Sleep(20 * check)
	lookups, wakes := checker.lookups.Load()-l0, sleeps()-w0
	t.Logf("%d waiters on locks of one live holder: %d registry lookups and %d wakes in 20 intervals", n, lookups, wakes)
	if lookups > 40 {
		t.Errorf("%d lookups for %d watches of one holder in 20 intervals", lookups, n)
	}
	if wakes != 0 {
		t.Errorf("%d wakes while the holder lives", wakes)
	}
	dead := proc.ID{Slot: 4, Gen: 7}.Pack() | waiters
	for i := range words {
		atomic.StoreUint64(&words[i], dead)
	}
	start := time.Now()
	for range n {
		select {
		case err := <-res:
			if !errors.Is(err, ErrOwnerDead) {
				t.Fatalf("Lock: %v, want ErrOwnerDead", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter never took the dead holder's lock over")
		}
	}
	t.Logf("dead holder: every waiter took over after %v", time.Since(start))
	// Every waiter left its watch; the watches, kept for waiters that come
	// back, go at the checker's next pass, and the checker with them.
	checker.mu.Lock()
	waited := 0
	for _, wt := range checker.list {
		waited += wt.refs
	}
	checker.mu.Unlock()
	if waited != 0 {
		t.Fatalf("%d waiters still registered", waited)
	}
	for end := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		checker.mu.Lock()
		left, running := len(checker.list), checker.running
		checker.mu.Unlock()
		if left == 0 && !running {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d watches left, checker running %v, a second after the waiters", left, running)
		}
	}
}
