//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/shm"
)

func newBarrier(t testing.TB, parties int, opts *barrier.Options) (string, []byte, *barrier.Barrier) {
	t.Helper()
	path, mem := newShared(t, memSize)
	o := barrier.Options{}
	if opts != nil {
		o = *opts
	}
	o.Registry = regtest.Registry(t, path)
	registries[&mem[0]] = o.Registry
	b, err := barrier.Init(mem[:barrier.SizeOf(parties, 0)], parties, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return path, mem, b
}

// registries remembers the registry newBarrier gave each barrier, so that
// attach names the same one: a handle without it would be a process the
// registry cannot know, and so dead to the others.
var registries = map[*byte]*shm.Registry{}

func attach(t testing.TB, mem []byte, opts *barrier.Options) *barrier.Barrier {
	t.Helper()
	o := barrier.Options{}
	if opts != nil {
		o = *opts
	}
	if o.Registry == nil {
		o.Registry = registries[&mem[0]]
	}
	b, err := barrier.Attach(mem, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runParties runs f in n goroutines and returns their results.
func runParties(n int, f func(i int) (int, error)) ([]int, []error) {
	idx := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx[i], errs[i] = f(i)
		}()
	}
	wg.Wait()
	return idx, errs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConstructorErrors(t *testing.T) {
	_, mem := newShared(t, memSize)
	for _, p := range []int{0, -1, barrier.MaxParties + 1} {
		if _, err := barrier.Init(mem, p, nil); !errors.Is(err, barrier.ErrInvalidParties) {
			t.Errorf("Init(parties %d) = %v, want ErrInvalidParties", p, err)
		}
	}
	for _, h := range []int{-1, barrier.MaxHandles + 1} {
		if _, err := barrier.Init(mem, 2, &barrier.Options{Handles: h}); !errors.Is(err, barrier.ErrInvalidParties) {
			t.Errorf("Init(handles %d) = %v, want ErrInvalidParties", h, err)
		}
	}
	if _, err := barrier.Init(mem[:barrier.SizeOf(4, 0)-1], 4, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(short) = %v, want ErrCorrupt", err)
	}
	if _, err := barrier.Init(mem[4:], 4, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(misaligned) = %v, want ErrCorrupt", err)
	}
	if _, err := barrier.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(zeroes) = %v, want ErrCorrupt", err)
	}
	if _, err := barrier.Attach(mem[:10], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(tiny) = %v, want ErrCorrupt", err)
	}

	b, err := barrier.Init(mem, 3, &barrier.Options{Handles: 2})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := barrier.Attach(mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := barrier.Attach(mem, nil); !errors.Is(err, barrier.ErrTooManyHandles) {
		t.Errorf("third handle of 2 = %v, want ErrTooManyHandles", err)
	}
	b2.Close()
	if err := b2.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	b3, err := barrier.Attach(mem, nil)
	if err != nil {
		t.Fatalf("Attach after Close freed a slot: %v", err)
	}
	b3.Close()
	b.Close()

	// Corrupt fields.
	if _, err := barrier.Init(mem, 3, nil); err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(u32(mem, 0), 4<<3) // count 4 > 3 parties
	if _, err := barrier.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(count > parties) = %v, want ErrCorrupt", err)
	}
	atomic.StoreUint32(u32(mem, 0), 0)
	atomic.StoreUint32(u32(mem, 12), 0) // parties 0
	if _, err := barrier.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(parties 0) = %v, want ErrCorrupt", err)
	}
	atomic.StoreUint32(u32(mem, 12), 3)
	atomic.StoreUint32(u32(mem, 16), 1<<20) // handles beyond the memory
	if _, err := barrier.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(huge handles) = %v, want ErrCorrupt", err)
	}
	atomic.StoreUint32(u32(mem, 16), 200) // handles beyond len(mem)
	if _, err := barrier.Attach(mem[:barrier.SizeOf(3, 6)], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(handles beyond mem) = %v, want ErrCorrupt", err)
	}
}

// TestMultipass is Python's test_barrier: N parties, several rounds, and no
// party starts round r+1 before every party finished round r.
func TestMultipass(t *testing.T) {
	const n, rounds = 5, 50
	path, mem, b := newBarrier(t, n, nil)
	// Every handle names the barrier's registry: a handle without one has
	// an identity the others' registry counts as dead.
	reg := regtest.Registry(t, path)
	var phase [rounds]atomic.Int32
	_, errs := runParties(n, func(i int) (int, error) {
		h := b
		if i%2 == 1 {
			h = attach(t, mem[:barrier.SizeOf(n, 0)], &barrier.Options{Registry: reg})
		}
		for r := 0; r < rounds; r++ {
			phase[r].Add(1)
			if _, err := h.Wait(context.Background()); err != nil {
				return 0, err
			}
			if got := phase[r].Load(); got != n {
				return 0, fmt.Errorf("round %d: %d arrived when released", r, got)
			}
		}
		return 0, nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := b.State(); st.Rounds != rounds || st.Broken || st.Waiting != 0 {
		t.Fatalf("State = %+v", st)
	}
}

// TestWaitReturn is Python's test_wait_return: the indices of a round are
// 0..n-1, each once.
func TestWaitReturn(t *testing.T) {
	const n = 6
	_, _, b := newBarrier(t, n, nil)
	for round := 0; round < 20; round++ {
		idx, errs := runParties(n, func(int) (int, error) { return b.Wait(context.Background()) })
		seen := make([]bool, n)
		for i := range idx {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if idx[i] < 0 || idx[i] >= n || seen[idx[i]] {
				t.Fatalf("round %d: indices %v", round, idx)
			}
			seen[idx[i]] = true
		}
	}
}

// TestAction is Python's test_action: the action runs once per round, by
// the last party, before the others are released.
func TestAction(t *testing.T) {
	const n = 4
	var runs atomic.Int32
	var released atomic.Int32
	_, _, b := newBarrier(t, n, &barrier.Options{Action: func() error {
		if released.Load() != 0 {
			return errors.New("action ran after a release")
		}
		runs.Add(1)
		return nil
	}})
	for round := 1; round <= 3; round++ {
		released.Store(0)
		idx, errs := runParties(n, func(int) (int, error) {
			i, err := b.Wait(context.Background())
			released.Add(1)
			return i, err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if runs.Load() != int32(round) {
			t.Fatalf("action ran %d times in %d rounds", runs.Load(), round)
		}
		last := 0
		for _, i := range idx {
			if i == n-1 {
				last++
			}
		}
		if last != 1 {
			t.Fatalf("indices %v: want one n-1", idx)
		}
	}
}

func testFailingAction(t *testing.T, action func() error, check func(error) bool) {
	const n = 3
	_, mem, b := newBarrier(t, n, nil)
	withAction := attach(t, mem[:barrier.SizeOf(n, 0)], &barrier.Options{Action: action})
	// The two plain parties arrive first; the one with the action last.
	_, errs := runParties(n, func(i int) (int, error) {
		if i == 0 {
			waitFor(t, "two waiters", func() bool { return b.NWaiting() == 2 })
			return withAction.Wait(context.Background())
		}
		return b.Wait(context.Background())
	})
	if !check(errs[0]) {
		t.Fatalf("the party whose action failed got %v", errs[0])
	}
	for _, err := range errs[1:] {
		if !errors.Is(err, barrier.ErrBrokenBarrier) {
			t.Fatalf("another party got %v, want ErrBrokenBarrier", err)
		}
	}
	if !b.Broken() {
		t.Fatal("barrier not broken")
	}
	if _, err := b.WaitTimeout(time.Second); !errors.Is(err, barrier.ErrBrokenBarrier) {
		t.Fatalf("Wait on a broken barrier = %v", err)
	}
	b.Reset()
	if b.Broken() {
		t.Fatal("Reset did not repair")
	}
}

var errAction = errors.New("action failed")

func TestActionError(t *testing.T) {
	testFailingAction(t, func() error { return errAction }, func(err error) bool { return err == errAction })
}

func TestActionPanic(t *testing.T) {
	testFailingAction(t, func() error { panic("boom") }, func(err error) bool {
		return errors.Is(err, barrier.ErrActionPanicked) && !errors.Is(err, barrier.ErrBrokenBarrier)
	})
}

// TestAbort is Python's test_abort: a party aborts; the others waiting get
// ErrBrokenBarrier, and so does every later Wait until Reset.
func TestAbort(t *testing.T) {
	const n = 4
	_, _, b := newBarrier(t, n, nil)
	_, errs := runParties(n, func(i int) (int, error) {
		if i == 0 {
			waitFor(t, "three waiters", func() bool { return b.NWaiting() == n-1 })
			b.Abort()
			return 0, nil
		}
		return b.Wait(context.Background())
	})
	for _, err := range errs[1:] {
		if !errors.Is(err, barrier.ErrBrokenBarrier) {
			t.Fatalf("waiter got %v, want ErrBrokenBarrier", err)
		}
	}
	if !b.Broken() || b.NWaiting() != 0 {
		t.Fatalf("Broken %v NWaiting %d", b.Broken(), b.NWaiting())
	}
	if _, err := b.WaitTimeout(0); !errors.Is(err, barrier.ErrBrokenBarrier) {
		t.Fatalf("Wait after Abort = %v", err)
	}
}

// TestReset is Python's test_reset: a Reset while parties wait breaks
// their round; afterwards the barrier works again.
func TestReset(t *testing.T) {
	const n = 4
	_, _, b := newBarrier(t, n, nil)
	_, errs := runParties(n, func(i int) (int, error) {
		if i == 0 {
			waitFor(t, "three waiters", func() bool { return b.NWaiting() == n-1 })
			b.Reset()
			return 0, nil
		}
		return b.Wait(context.Background())
	})
	for _, err := range errs[1:] {
		if !errors.Is(err, barrier.ErrBrokenBarrier) {
			t.Fatalf("waiter got %v, want ErrBrokenBarrier", err)
		}
	}
	if b.Broken() || b.NWaiting() != 0 {
		t.Fatalf("after Reset: Broken %v NWaiting %d", b.Broken(), b.NWaiting())
	}
	_, errs = runParties(n, func(int) (int, error) { return b.Wait(context.Background()) })
	for _, err := range errs {
		if err != nil {
			t.Fatalf("round after Reset: %v", err)
		}
	}
}

// TestAbortAndReset is Python's test_abort_and_reset.
func TestAbortAndReset(t *testing.T) {
	const n = 3
	_, _, b := newBarrier(t, n, nil)
	b.Abort()
	if _, err := b.Wait(context.Background()); !errors.Is(err, barrier.ErrBrokenBarrier) {
		t.Fatalf("Wait after Abort = %v", err)
	}
	b.Reset()
	for round := 0; round < 3; round++ {
		_, errs := runParties(n, func(int) (int, error) { return b.Wait(context.Background()) })
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d after Abort+Reset: %v", round, err)
			}
		}
	}
}

// TestTimeout is Python's test_timeout: a Wait that times out breaks the
// barrier for everyone.
func TestTimeout(t *testing.T) {
	const n = 3
	_, _, b := newBarrier(t, n, nil)
	start := time.Now()
	_, errs := runParties(n-1, func(i int) (int, error) {
		if i == 0 {
			return b.WaitTimeout(100 * time.Millisecond)
		}
		return b.WaitTimeout(20 * time.Second)
	})
	if !errors.Is(errs[0], barrier.ErrTimedOut) || !errors.Is(errs[0], barrier.ErrBrokenBarrier) {
		t.Fatalf("timed-out party got %v", errs[0])
	}
	if !errors.Is(errs[1], barrier.ErrBrokenBarrier) || errors.Is(errs[1], barrier.ErrTimedOut) {
		t.Fatalf("other party got %v, want plain ErrBrokenBarrier", errs[1])
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	if !b.Broken() {
		t.Fatal("not broken")
	}
	// Zero and negative timeouts: the last party passes, others break it.
	for _, d := range []time.Duration{0, -time.Second} {
		b.Reset()
		if _, err := b.WaitTimeout(d); !errors.Is(err, barrier.ErrTimedOut) {
			t.Fatalf("WaitTimeout(%v) as first party = %v", d, err)
		}
	}
	b.Reset()
	_, errs = runParties(n, func(i int) (int, error) {
		if i == 0 {
			waitFor(t, "two waiters", func() bool { return b.NWaiting() == n-1 })
			return b.WaitTimeout(0)
		}
		return b.WaitTimeout(20 * time.Second)
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("WaitTimeout(0) as the last party: %v", err)
		}
	}
}

// TestDefaultTimeout is Python's test_default_timeout.
func TestDefaultTimeout(t *testing.T) {
	_, _, b := newBarrier(t, 2, &barrier.Options{Timeout: 100 * time.Millisecond})
	if _, err := b.Wait(context.Background()); !errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("Wait with a default timeout = %v", err)
	}
}

// TestSingleParty is Python's test_single_thread.
func TestSingleParty(t *testing.T) {
	runs := 0
	_, _, b := newBarrier(t, 1, &barrier.Options{Action: func() error { runs++; return nil }})
	for i := 0; i < 3; i++ {
		if idx, err := b.WaitTimeout(0); idx != 0 || err != nil {
			t.Fatalf("Wait = %d, %v", idx, err)
		}
	}
	if runs != 3 || b.State().Rounds != 3 {
		t.Fatalf("runs %d rounds %d", runs, b.State().Rounds)
	}
}

// TestContextCancel: a cancelled Wait returns promptly and withdraws its
// arrival; the round then completes with the others.
func TestContextCancel(t *testing.T) {
	const n = 3
	_, _, b := newBarrier(t, n, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(cancelled) = %v", err)
	}
	if b.NWaiting() != 0 {
		t.Fatalf("NWaiting %d after a cancelled Wait", b.NWaiting())
	}
	// One party waits with no deadline; a second is cancelled while
	// waiting.
	first := make(chan error, 1)
	go func() { _, err := b.Wait(context.Background()); first <- err }()
	waitFor(t, "the first waiter", func() bool { return b.NWaiting() == 1 })
	before := b.State()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("cancellation took %v", el)
	}
	after := b.State()
	if after.Waiting != before.Waiting || after.Broken || after.Generation != before.Generation {
		t.Fatalf("cancelled Wait changed the barrier: %+v -> %+v", before, after)
	}
	// The round completes with two more parties, indices unique.
	idx, errs := runParties(n-1, func(int) (int, error) { return b.Wait(context.Background()) })
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if idx[0] == idx[1] {
		t.Fatalf("indices %v", idx)
	}
}

// TestResetWhenIdle: Reset of a barrier nobody waits at changes nothing a
// party can see.
func TestResetWhenIdle(t *testing.T) {
	_, _, b := newBarrier(t, 2, nil)
	b.Reset()
	_, errs := runParties(2, func(int) (int, error) { return b.Wait(context.Background()) })
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestThousand is Python's test_thousand (scaled): many goroutines, many
// rounds.
func TestThousand(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 20
	}
	_, mem := newShared(t, memSize)
	b, err := barrier.Init(mem[:barrier.SizeOf(n, 0)], n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for r := 0; r < 5; r++ {
		idx, errs := runParties(n, func(int) (int, error) { return b.Wait(context.Background()) })
		seen := make(map[int]bool)
		for i := range idx {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			seen[idx[i]] = true
		}
		if len(seen) != n {
			t.Fatalf("round %d: %d distinct indices of %d", r, len(seen), n)
		}
	}
}

// TestWaitSleepsOnce: a party waiting for the others does not wake every
// check interval: after its first interval asleep the process's checker
// looks at the parties for all of its sleepers, and wakes them at most
// once more (its first look, which cannot tell what changed while they
// slept).
func TestWaitSleepsOnce(t *testing.T) {
	_, _, b := newBarrier(t, 2, &barrier.Options{CheckInterval: 2 * time.Millisecond})
	if _, err := b.WaitTimeout(200 * time.Millisecond); !errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("WaitTimeout alone: %v, want ErrTimedOut", err)
	}
	if n := b.Stats().Waits; n > 3 {
		t.Errorf("a Wait of 200 ms with a 2 ms check interval slept %d times, want at most 3", n)
	}
}
