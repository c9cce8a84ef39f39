//go:build linux

package barrier

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

func init() { proctest.Register("killrelease", childKillRelease) }

// childKillRelease arrives last at the Barrier(2) in the file args[0] and
// is SIGKILLed inside its release, after the swap of the state word and
// before it counts the round or wakes anyone.
func childKillRelease(args []string) error {
	mem, err := proctest.MapFile(args[0])
	if err != nil {
		return err
	}
	b, err := Attach(mem[:SizeOf(2, 0)], nil)
	if err != nil {
		return err
	}
	releaseHook = func(*Barrier) { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	_, err = b.Wait(context.Background())
	return err // not reached
}

// TestReleaserKilledAfterSwap: the party that releases a round is killed
// between its swap of the state word and its count of the round (and its
// wake). The released party still leaves with its index, the round is
// counted, and an observer that slept on the barrier (Arm, as
// waitset.Tripped does) sees it. Before the rounds word named the round it
// counted, the round was lost: Rounds stayed 0 and the observer waited for
// the next round.
func TestReleaserKilledAfterSwap(t *testing.T) {
	path, mem := proctest.SharedFile(t, 4096)
	b, err := Init(mem[:SizeOf(2, 0)], 2, &Options{CheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	observed := make(chan uint64, 1)
	go func() {
		for {
			word, val := b.Arm()
			if r := b.Rounds(); r != 0 {
				observed <- r
				return
			}
			futex.Wait(context.Background(), word, val, futex.After(b.CheckInterval()))
		}
	}()
	party := make(chan error, 1)
	go func() {
		idx, err := b.Wait(context.Background())
		if err == nil && idx != 0 {
			t.Errorf("released party's index %d, want 0", idx)
		}
		party <- err
	}()
	for b.NWaiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // both asleep
	c := proctest.Start(t, "killrelease", path)
	<-c.Done()
	select {
	case err := <-party:
		if err != nil {
			t.Fatalf("released party: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("released party still waits")
	}
	select {
	case r := <-observed:
		if r != 1 {
			t.Fatalf("observer saw %d rounds, want 1", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("observer still waits; rounds = %d", b.Rounds())
	}
	if r := b.Rounds(); r != 1 {
		t.Fatalf("rounds = %d after the round drained, want 1", r)
	}
}

// TestArrivalWakesNobody: the process's checker wakes a barrier's
// sleepers when a release, break, reset or drain's end came without its
// wake, not when a party arrives (which wakes nobody by design). The
// arrival is forged as the count it adds, while a waiter sleeps past its
// first check interval.
func TestArrivalWakesNobody(t *testing.T) {
	_, mem := proctest.SharedFile(t, 4096)
	const check = 2 * time.Millisecond
	b, err := Init(mem[:SizeOf(3, 0)], 3, &Options{CheckInterval: check})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.WaitTimeout(time.Second); done <- err }()
	for b.NWaiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * check) // past the first interval and the checker's first look
	before := b.Stats().Waits
	atomic.AddUint32(b.w, 1<<countShift) // a second party arrives
	time.Sleep(50 * check)
	if n := b.Stats().Waits - before; n != 0 {
		t.Errorf("an arrival woke the sleeping waiter %d times", n)
	}
	if err := <-done; !errors.Is(err, ErrTimedOut) {
		t.Fatalf("WaitTimeout = %v, want ErrTimedOut", err)
	}
}
