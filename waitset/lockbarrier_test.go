//go:build linux

package waitset_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/waitset"
)

const lockCheck = 20 * time.Millisecond

func init() {
	proctest.Register("lockholder", roleLockHolder)
	proctest.Register("party", roleParty)
	proctest.Register("aborter", roleAborter)
}

// roleLockHolder acquires lock "mu" of the segment at args[0], says Ready
// and holds it for args[1] (then releases it and exits), or until killed.
func roleLockHolder(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	mu, err := lock.Open(seg, "mu", nil)
	if err != nil {
		return err
	}
	if err := mu.Acquire(context.Background()); err != nil {
		return err
	}
	proctest.SignalReady()
	d, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	time.Sleep(d)
	return mu.Release()
}

// roleParty waits once at barrier "b" of the segment at args[0] and
// prints its index or error.
func roleParty(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	b, err := barrier.Open(seg, "b", nil)
	if err != nil {
		return err
	}
	defer b.Close()
	proctest.SignalReady()
	i, err := b.WaitTimeout(time.Minute)
	fmt.Println("wait", i, err)
	return nil
}

// roleAborter aborts barrier "b" of the segment at args[0].
func roleAborter(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	b, err := barrier.Open(seg, "b", &barrier.Options{Observe: true})
	if err != nil {
		return err
	}
	b.Abort()
	return nil
}

func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

type selResult struct {
	i   int
	err error
	at  time.Time
}

func selectAsync(cases ...waitset.Case) <-chan selResult {
	res := make(chan selResult, 1)
	go func() {
		i, err := waitset.Select(context.Background(), cases...)
		res <- selResult{i, err, time.Now()}
	}()
	return res
}

func expectPending(t *testing.T, res <-chan selResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-res:
		t.Fatalf("Select returned %d, %v while nothing was ready", r.i, r.err)
	case <-time.After(d):
	}
}

func receive(t *testing.T, res <-chan selResult) selResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Select did not return")
	}
	panic("unreachable")
}

// TestSelectLock: a Lock case held by another process waits; it takes the
// lock when that process releases it, and leaves it alone when another
// case wins.
func TestSelectLock(t *testing.T) {
	seg := newSeg(t)
	mu := must(lock.Create(seg, "mu", &lock.Options{CheckInterval: lockCheck}))(t)
	e := must(event.Create(seg, "e", nil))(t)

	c := proctest.Start(t, "lockholder", seg.Path(), "300ms")
	c.Expect(proctest.Ready, 30*time.Second)
	if i, err := waitset.SelectTimeout(30*time.Millisecond, waitset.Lock(mu)); i != -1 || err != nil {
		t.Fatalf("SelectTimeout on a held lock = %d, %v", i, err)
	}
	res := selectAsync(waitset.EventSet(e), waitset.Lock(mu))
	r := receive(t, res)
	if r.i != 1 || r.err != nil {
		t.Fatalf("Select = %d, %v; want the lock", r.i, r.err)
	}
	if st := mu.State(); !st.HeldBySelf {
		t.Fatalf("the Lock case completed without holding the lock: %+v", st)
	}
	c.WaitOK()
	// Held by this process now: another Select waits, then the event wins
	// and the lock stays held as it was.
	res = selectAsync(waitset.Lock(mu), waitset.EventSet(e))
	expectPending(t, res, 50*time.Millisecond)
	e.Set()
	if r := receive(t, res); r.i != 1 || r.err != nil {
		t.Fatalf("Select = %d, %v; want the event", r.i, r.err)
	}
	if err := mu.Release(); err != nil {
		t.Fatal(err)
	}
	if i, err := waitset.TrySelect(waitset.Lock(mu)); i != 0 || err != nil || !mu.State().HeldBySelf {
		t.Fatalf("TrySelect on a free lock = %d, %v", i, err)
	}
	mu.Release()
}

// TestSelectLockOwnerDead: a Select sleeping on a lock whose holder is
// killed takes the lock over within the check interval and returns
// lock.ErrOwnerDead with the lock's index, holding it, as Acquire does.
// Without a liveness watch the Select would sleep for ever.
func TestSelectLockOwnerDead(t *testing.T) {
	seg := newSeg(t)
	mu := must(lock.Create(seg, "mu", &lock.Options{CheckInterval: lockCheck}))(t)
	e := must(event.Create(seg, "e", nil))(t)
	c := proctest.Start(t, "lockholder", seg.Path(), "1h")
	c.Expect(proctest.Ready, 30*time.Second)
	res := selectAsync(waitset.EventSet(e), waitset.Lock(mu))
	expectPending(t, res, 3*lockCheck) // the checker runs and finds the holder alive
	killed := time.Now()
	c.Kill()
	r := receive(t, res)
	if r.i != 1 || !errors.Is(r.err, lock.ErrOwnerDead) {
		t.Fatalf("Select = %d, %v; want 1, ErrOwnerDead", r.i, r.err)
	}
	t.Logf("dead holder found %v after SIGKILL (check interval %v)", r.at.Sub(killed), lockCheck)
	st := mu.State()
	if !st.HeldBySelf || !st.Inconsistent {
		t.Fatalf("after ErrOwnerDead: %+v", st)
	}
	if err := mu.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := mu.Release(); err != nil {
		t.Fatal(err)
	}
	// A lock released without repair is not recoverable: the case says so.
	c = proctest.Start(t, "lockholder", seg.Path(), "1h")
	c.Expect(proctest.Ready, 30*time.Second)
	c.Kill()
	<-c.Done()
	if i, err := waitset.SelectTimeout(5*time.Second, waitset.Lock(mu)); i != 0 || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("Select on a dead holder's lock = %d, %v", i, err)
	}
	mu.Release() // unrepaired
	if i, err := waitset.TrySelect(waitset.Lock(mu)); i != 0 || !errors.Is(err, lock.ErrNotRecoverable) {
		t.Fatalf("TrySelect on a lock not recoverable = %d, %v", i, err)
	}
}

// TestSelectTripped: a Tripped case is ready when the parties of a round,
// in other processes, have all arrived; it is not a party itself (the
// round waits for the real ones); it reports a broken barrier.
func TestSelectTripped(t *testing.T) {
	seg := newSeg(t)
	b := must(barrier.Create(seg, "b", 2, &barrier.Options{Observe: true}))(t)
	e := must(event.Create(seg, "e", nil))(t)
	trip := waitset.Tripped(b)

	p1 := proctest.Start(t, "party", seg.Path())
	p1.Expect(proctest.Ready, 30*time.Second)
	res := selectAsync(waitset.EventSet(e), trip)
	// One party arrived: the round must not trip with the Select counted
	// as the second.
	deadline := time.Now().Add(10 * time.Second)
	for b.NWaiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the party never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	expectPending(t, res, 100*time.Millisecond)
	if n := b.NWaiting(); n != 1 {
		t.Fatalf("%d waiting with one party and a Select", n)
	}
	p2 := proctest.Start(t, "party", seg.Path())
	if r := receive(t, res); r.i != 1 || r.err != nil || trip.Rounds != 1 {
		t.Fatalf("Select = %d, %v, %d rounds; want the trip", r.i, r.err, trip.Rounds)
	}
	for _, c := range []*proctest.Child{p1, p2} {
		if out := lastLine(c.WaitOK()); out != "wait 0 <nil>" && out != "wait 1 <nil>" {
			t.Fatalf("party said %q", out)
		}
	}
	// Reported once: the same case waits for the next round.
	if i, err := waitset.TrySelect(trip); i != -1 || err != nil {
		t.Fatalf("TrySelect after the trip was reported = %d, %v", i, err)
	}

	// A party waits, another process aborts: the case reports the break.
	p3 := proctest.Start(t, "party", seg.Path())
	p3.Expect(proctest.Ready, 30*time.Second)
	res = selectAsync(trip, waitset.EventSet(e))
	expectPending(t, res, 50*time.Millisecond)
	proctest.Start(t, "aborter", seg.Path()).WaitOK()
	if r := receive(t, res); r.i != 0 || !errors.Is(r.err, barrier.ErrBrokenBarrier) {
		t.Fatalf("Select after Abort = %d, %v; want 0, ErrBrokenBarrier", r.i, r.err)
	}
	if out := lastLine(p3.WaitOK()); out != "wait -1 barrier: broken" {
		t.Fatalf("party said %q", out)
	}
}

// TestSelectTrippedOnePartyRounds: on a one-party barrier every Wait trips
// a round at once; a Select watching it from another goroutine must see
// each, whatever the interleaving of its arming with the release (the
// release wakes an observer that armed after the round's swap).
func TestSelectTrippedOnePartyRounds(t *testing.T) {
	seg := newSeg(t)
	b := must(barrier.Create(seg, "b", 1, nil))(t)
	n := 2000
	if testing.Short() {
		n = 300
	}
	for k := range n {
		trip := waitset.Tripped(b)
		res := make(chan error, 1)
		go func() {
			_, err := waitset.SelectTimeout(10*time.Second, trip)
			res <- err
		}()
		if k%2 == 0 {
			time.Sleep(time.Duration(k%7) * time.Microsecond)
		}
		if _, err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-res; err != nil || trip.Rounds != 1 {
			t.Fatalf("round %d: %v, %d rounds", k, err, trip.Rounds)
		}
	}
}

// TestSelectTrippedReleaserDied: the state a party leaves when it is
// killed inside its release of a round, after its swap of the state word
// and before its count and wake (forged here in a barrier's memory: the
// round released, draining, nobody woken). A Select on Tripped wakes by
// itself within the barrier's check interval and reports the round.
// (barrier's TestReleaserKilledAfterSwap kills a real releaser there.)
func TestSelectTrippedReleaserDied(t *testing.T) {
	mem := make([]uint64, barrier.SizeOf(2, 0)/8)
	b := must(barrier.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*8), 2,
		&barrier.Options{CheckInterval: lockCheck}))(t)
	trip := waitset.Tripped(b)
	res := selectAsync(trip)
	expectPending(t, res, 50*time.Millisecond)
	// State word: draining (bit 1), count 1 (bits 3..12: the released
	// waiter yet to leave), generation 0; the sleeper's mark (bit 0)
	// cleared by the swap, and no wake.
	const draining, countShift = 2, 3
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[0])), draining|1<<countShift)
	start := time.Now()
	r := receive(t, res)
	if r.i != 0 || r.err != nil || trip.Rounds != 1 {
		t.Fatalf("Select: %d, %v, %d rounds; want the round", r.i, r.err, trip.Rounds)
	}
	if el := r.at.Sub(start); el > time.Second {
		t.Fatalf("Select saw the round %v after the release, want within the check interval (%v)", el, lockCheck)
	}
}
