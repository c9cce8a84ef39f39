//go:build linux

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/lock"
)

// Liveness checks at scale (issue 14): goroutines blocked on locks whose
// holder lives must not wake to ask whether it does. One checker per
// process asks the registry about each distinct holder once per check
// interval and wakes only the waiters of a holder that died.

const livenessCheck = 50 * time.Millisecond

func init() { addRole("lockhold-many", roleLockHoldMany) }

// roleLockHoldMany acquires the first args[1] locks laid out in the file
// at args[0] (lock.Size apart), says Ready and holds them until killed.
func roleLockHoldMany(args []string) error {
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	reg, err := regtest.Open(args[0])
	if err != nil {
		return err
	}
	mem, err := proctest.MapFile(args[0])
	if err != nil {
		return err
	}
	for i := range n {
		l, err := lock.Attach(mem[i*lock.Size:(i+1)*lock.Size], &lock.Options{Registry: reg})
		if err != nil {
			return err
		}
		if err := l.Acquire(context.Background()); err != nil {
			return fmt.Errorf("lock %d: %w", i, err)
		}
	}
	proctest.SignalReady()
	time.Sleep(time.Hour) // (select{} would end it: all goroutines asleep)
	return nil
}

// holdLocks lays n locks out in a shared file, has a child process take
// them all, and returns the parent's handles and the child.
func holdLocks(t *testing.T, n int) ([]*lock.Lock, *proctest.Child) {
	t.Helper()
	path, mem := proctest.SharedFile(t, n*lock.Size)
	reg := regtest.Registry(t, path)
	ls := make([]*lock.Lock, n)
	for i := range ls {
		ls[i] = must(lock.Init(mem[i*lock.Size:(i+1)*lock.Size], &lock.Options{Registry: reg, CheckInterval: livenessCheck}))(t)
	}
	c := proctest.Start(t, "lockhold-many", path, strconv.Itoa(n))
	c.Expect(proctest.Ready, 60*time.Second)
	t.Cleanup(c.Kill)
	return ls, c
}

// TestLivenessChecksDoNotWakeWaiters: 10,000 goroutines, each blocked on a
// lock held by one live process, with a 50 ms check interval. With a
// periodic wake per waiter that was 200,000 wakes a second; the waiters
// must now sleep through the checks. When the holder is killed, every
// waiter takes its lock over (ErrOwnerDead) within a few intervals.
func TestLivenessChecksDoNotWakeWaiters(t *testing.T) {
	n := 10000
	if !futex.Hub() {
		// The legacy path holds a thread per blocked word: 10,000 would
		// brush Go's thread limit.
		n = 1000
	}
	ls, c := holdLocks(t, n)
	type result struct {
		err error
		at  time.Time
	}
	res := make(chan result, n)
	for _, l := range ls {
		go func() {
			err := l.Acquire(context.Background())
			res <- result{err, time.Now()}
		}()
	}
	// Let every goroutine block: each sets its lock's waiters bit.
	deadline := time.Now().Add(60 * time.Second)
	for _, l := range ls {
		for !l.State().Waiters {
			if time.Now().After(deadline) {
				t.Fatal("a waiter never went to sleep")
			}
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(2 * livenessCheck)

	// A waiter woken while the holder lives sleeps again, which its
	// handle counts.
	sleeps := func() (n uint64) {
		for _, l := range ls {
			n += l.Stats().Waits
		}
		return n
	}
	const window = time.Second
	w0, t0 := sleeps(), time.Now()
	time.Sleep(window)
	wakes, el := sleeps()-w0, time.Since(t0)
	rate := float64(wakes) / el.Seconds()
	t.Logf("%d waiters on locks of a live holder, check interval %v: %d wakes in %v (%.0f/s)", n, livenessCheck, wakes, el.Round(time.Millisecond), rate)
	// One wake per waiter per interval would be n/livenessCheck a second
	// (200,000 for 10,000); allow a few spurious ones.
	if rate > 100 {
		t.Errorf("%.0f wakes a second while the holder lives, want none to speak of", rate)
	}
	select {
	case r := <-res:
		t.Fatalf("a waiter returned while the holder lives: %v", r.err)
	default:
	}

	killed := time.Now()
	c.Kill()
	var lat []time.Duration
	for range n {
		select {
		case r := <-res:
			if !errors.Is(r.err, lock.ErrOwnerDead) {
				t.Fatalf("after the holder died: %v, want ErrOwnerDead", r.err)
			}
			lat = append(lat, r.at.Sub(killed))
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d waiters took their lock over", len(lat), n)
		}
	}
	slices.Sort(lat)
	t.Logf("takeover after SIGKILL: median %v, max %v", lat[n/2], lat[n-1])
	for i, l := range ls {
		if st := l.State(); !st.HeldBySelf || !st.Inconsistent {
			t.Fatalf("lock %d after takeover: %+v", i, st)
		}
	}
}

// TestLivenessSingleWaiterLatency: one waiter learns that the holder died
// within one check interval of the death (plus scheduling slack on a
// loaded machine).
func TestLivenessSingleWaiterLatency(t *testing.T) {
	const check = 100 * time.Millisecond
	path, mem := proctest.SharedFile(t, lock.Size)
	reg := regtest.Registry(t, path)
	l := must(lock.Init(mem, &lock.Options{Registry: reg, CheckInterval: check}))(t)
	c := proctest.Start(t, "lockhold-many", path, "1")
	c.Expect(proctest.Ready, 60*time.Second)
	res := make(chan error, 1)
	go func() { res <- l.Acquire(context.Background()) }()
	for !l.State().Waiters {
		time.Sleep(time.Millisecond)
	}
	// Kill at a random phase of the check cycle.
	time.Sleep(check + time.Duration(time.Now().UnixNano()%int64(check)))
	killed := time.Now()
	c.Kill()
	<-c.Done()
	select {
	case err := <-res:
		el := time.Since(killed)
		if !errors.Is(err, lock.ErrOwnerDead) {
			t.Fatalf("Acquire: %v, want ErrOwnerDead", err)
		}
		t.Logf("dead holder found %v after SIGKILL (check interval %v)", el, check)
		if el > check+50*time.Millisecond {
			t.Errorf("took %v, more than one check interval (%v) and 50ms of slack", el, check)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never took the dead holder's lock over")
	}
}
