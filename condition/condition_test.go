//go:build linux

package condition_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/rlock"
)

var kinds = []string{"own", "lock", "rlock"}

func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, k := range kinds {
		t.Run(k, func(t *testing.T) { f(t, k) })
	}
}

// TestNotifyCounts: five waiters; Notify(2) wakes exactly two, NotifyAll
// the other three (Python's ConditionTests._check_notify, with goroutines).
func TestNotifyCounts(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		s := newSetup(t, kind, 0)
		c := s.c
		var woke atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Acquire(context.Background())
				if err := c.Wait(context.Background()); err != nil {
					t.Error(err)
				}
				woke.Add(1)
				c.Release()
			}()
		}
		waitFor(t, "5 waiters", 10*time.Second, func() bool { return c.State().Waiters == 5 })
		c.Acquire(context.Background())
		if err := c.Notify(2); err != nil {
			t.Fatal(err)
		}
		c.Release()
		waitFor(t, "2 woken", 10*time.Second, func() bool { return woke.Load() == 2 })
		time.Sleep(100 * time.Millisecond)
		if n := woke.Load(); n != 2 || c.State().Waiters != 3 {
			t.Fatalf("Notify(2) woke %d, %d still wait", n, c.State().Waiters)
		}
		c.Acquire(context.Background())
		c.NotifyAll()
		c.Release()
		wg.Wait()
		if n := woke.Load(); n != 5 {
			t.Fatalf("woke %d", n)
		}
		if st := c.State(); st.Waiters != 0 || st.Notified != 0 || st.Held {
			t.Fatalf("State = %+v", st)
		}
	})
}

// TestNotifyCountsProcesses: the same with five waiting processes.
func TestNotifyCountsProcesses(t *testing.T) {
	s := newSetup(t, "own", 0)
	c := s.c
	var cs []*proctest.Child
	for i := 0; i < 5; i++ {
		cs = append(cs, proctest.Start(t, "waiter", s.path, s.kind, "0"))
	}
	waitFor(t, "5 waiters", 20*time.Second, func() bool { return c.State().Waiters == 5 })
	c.Acquire(context.Background())
	c.Notify(2)
	c.Release()
	done := word(s.mem, 0)
	waitFor(t, "2 woken", 10*time.Second, func() bool { return atomic.LoadUint64(done) == 2 })
	time.Sleep(150 * time.Millisecond)
	if n := atomic.LoadUint64(done); n != 2 {
		t.Fatalf("Notify(2) woke %d processes", n)
	}
	c.Acquire(context.Background())
	c.NotifyAll()
	c.Release()
	for _, out := range proctest.WaitAll(cs) {
		if out != "done true nil 1\n" {
			t.Fatalf("waiter: %q", out)
		}
	}
}

// TestNotifyFIFO: Notify(1) wakes the oldest waiter.
func TestNotifyFIFO(t *testing.T) {
	s := newSetup(t, "own", 0)
	c := s.c
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Acquire(context.Background())
			c.Wait(context.Background())
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			c.Release()
		}()
		waitFor(t, "waiter", 10*time.Second, func() bool { return c.State().Waiters == i+1 })
	}
	for i := 0; i < 4; i++ {
		c.Acquire(context.Background())
		c.Notify(1)
		c.Release()
		waitFor(t, "one woken", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == i+1 })
	}
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 2 3]" {
		t.Fatalf("woken in order %v", order)
	}
}

// TestNotRemembered: a Notify with nobody waiting is not saved for a later
// Wait.
func TestNotRemembered(t *testing.T) {
	s := newSetup(t, "own", 0)
	c := s.c
	c.Acquire(context.Background())
	c.Notify(1)
	c.NotifyAll()
	ok, err := c.WaitTimeout(50 * time.Millisecond)
	if ok || err != nil {
		t.Fatalf("WaitTimeout after an unheard Notify = %v, %v", ok, err)
	}
	c.Release()
}

func TestWithoutLock(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		s := newSetup(t, kind, 0)
		c := s.c
		pred := func() bool { return true }
		check := func(who string) {
			if err := c.Wait(context.Background()); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: Wait = %v", who, err)
			}
			if _, err := c.WaitTimeout(time.Second); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: WaitTimeout = %v", who, err)
			}
			if _, err := c.WaitTimeout(0); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: WaitTimeout(0) = %v", who, err)
			}
			if _, err := c.WaitFor(context.Background(), pred); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: WaitFor = %v", who, err)
			}
			if _, err := c.WaitForTimeout(time.Second, pred); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: WaitForTimeout = %v", who, err)
			}
			if err := c.Notify(1); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: Notify = %v", who, err)
			}
			if err := c.NotifyAll(); !errors.Is(err, condition.ErrNotOwner) {
				t.Errorf("%s: NotifyAll = %v", who, err)
			}
		}
		check("unlocked")
		if kind != "lock" {
			// An RLock held by another goroutine is not the caller's.
			c.Acquire(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); check("other goroutine") }()
			<-done
			c.Release()
		}
		if st := c.State(); st.Waiters != 0 || st.Held {
			t.Fatalf("State = %+v", st)
		}
	})
}

func TestWaitTimeouts(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		s := newSetup(t, kind, 0)
		c := s.c
		c.Acquire(context.Background())
		defer c.Release()
		for _, d := range []time.Duration{0, -time.Second} {
			start := time.Now()
			if ok, err := c.WaitTimeout(d); ok || err != nil || time.Since(start) > 500*time.Millisecond {
				t.Fatalf("WaitTimeout(%v) = %v, %v after %v", d, ok, err, time.Since(start))
			}
		}
		start := time.Now()
		ok, err := c.WaitTimeout(100 * time.Millisecond)
		if el := time.Since(start); ok || err != nil || el < 100*time.Millisecond || el > 5*time.Second {
			t.Fatalf("WaitTimeout(100ms) = %v, %v after %v", ok, err, el)
		}
		if st := c.State(); !st.Held || st.Waiters != 0 || st.Level != 1 {
			t.Fatalf("State after a timed-out wait = %+v", st)
		}
	})
}

// TestWaitFor: Python's ConditionTests.test_waitfor and
// test_waitfor_timeout.
func TestWaitFor(t *testing.T) {
	s := newSetup(t, "own", 0)
	c := s.c
	var state atomic.Int32 // the lock orders it; atomic for the race detector, which cannot see a lock in mmapped memory
	var calls atomic.Int32
	go func() {
		for i := 0; i < 4; i++ {
			time.Sleep(10 * time.Millisecond)
			c.Acquire(context.Background())
			state.Add(1)
			c.Notify(1)
			c.Release()
		}
	}()
	c.Acquire(context.Background())
	ok, err := c.WaitFor(context.Background(), func() bool { calls.Add(1); return state.Load() == 4 })
	if !ok || err != nil || state.Load() != 4 || calls.Load() < 2 {
		t.Fatalf("WaitFor = %v, %v; state %d after %d calls", ok, err, state.Load(), calls.Load())
	}
	// With a timeout that passes: the predicate's last value, false.
	start := time.Now()
	calls.Store(0)
	ok, err = c.WaitForTimeout(100*time.Millisecond, func() bool { calls.Add(1); return state.Load() == 5 })
	if el := time.Since(start); ok || err != nil || el < 100*time.Millisecond || calls.Load() < 2 {
		t.Fatalf("WaitForTimeout = %v, %v after %v and %d calls", ok, err, el, calls.Load())
	}
	// Zero and negative: the predicate once.
	for _, d := range []time.Duration{0, -time.Second} {
		calls.Store(0)
		if ok, err := c.WaitForTimeout(d, func() bool { calls.Add(1); return false }); ok || err != nil || calls.Load() != 1 {
			t.Fatalf("WaitForTimeout(%v) = %v, %v, %d calls", d, ok, err, calls.Load())
		}
		calls.Store(0)
		if ok, _ := c.WaitForTimeout(d, func() bool { calls.Add(1); return true }); !ok || calls.Load() != 1 {
			t.Fatalf("WaitForTimeout(%v) of a true predicate = %v, %d calls", d, ok, calls.Load())
		}
	}
	// With a timeout long enough: true.
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Acquire(context.Background())
		state.Store(5)
		c.NotifyAll()
		c.Release()
	}()
	if ok, err := c.WaitForTimeout(10*time.Second, func() bool { return state.Load() == 5 }); !ok || err != nil {
		t.Fatalf("WaitForTimeout = %v, %v", ok, err)
	}
	// A context that ends while the predicate is false.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if ok, err := c.WaitFor(ctx, func() bool { return state.Load() == 6 }); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor with an ending context = %v, %v", ok, err)
	}
	c.Release()
}

// TestRLockLevel3: a Condition over an RLock held at level 3: Wait releases
// it completely (another process acquires it and notifies) and restores
// level 3.
func TestRLockLevel3(t *testing.T) {
	for _, kind := range []string{"own", "rlock"} {
		t.Run(kind, func(t *testing.T) {
			s := newSetup(t, kind, 0)
			c := s.c
			for i := 0; i < 3; i++ {
				c.Acquire(context.Background())
			}
			r := c.Lock().(*rlock.RLock)
			if r.Level() != 3 {
				t.Fatal(r.Level())
			}
			child := proctest.Start(t, "notifier", s.path, s.kind)
			ok, err := c.WaitTimeout(20 * time.Second)
			if !ok || err != nil {
				t.Fatalf("WaitTimeout = %v, %v; child: %s", ok, err, child.Wait(time.Second).Stdout)
			}
			if r.Level() != 3 || atomic.LoadUint64(word(s.mem, 1)) != 1 {
				t.Fatalf("level %d after Wait, word %d", r.Level(), atomic.LoadUint64(word(s.mem, 1)))
			}
			if out := child.WaitOK(); out != "try true nil\n" {
				t.Fatalf("notifier: %q", out)
			}
			for i := 0; i < 3; i++ {
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
			}
			if c.State().Held {
				t.Fatal("held after three releases")
			}
		})
	}
}

// TestTimedOutDoesNotSwallow: waiter A (older) times out while the
// notifier holds the lock; the notifier's Notify(1) must reach waiter B,
// not A's stale slot. With processes.
func TestTimedOutDoesNotSwallow(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		s := newSetup(t, kind, 0)
		c := s.c
		a := proctest.Start(t, "waiter", s.path, s.kind, "100")
		waitFor(t, "A waiting", 20*time.Second, func() bool { return c.State().Waiters == 1 })
		b := proctest.Start(t, "waiter", s.path, s.kind, "0")
		waitFor(t, "B waiting", 20*time.Second, func() bool { return c.State().Waiters == 2 })
		if err := c.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A's timeout passes while we hold the lock: A withdraws, and
		// waits for the lock to return.
		waitFor(t, "A timed out", 10*time.Second, func() bool { return c.State().Waiters == 1 })
		time.Sleep(50 * time.Millisecond)
		if err := c.Notify(1); err != nil {
			t.Fatal(err)
		}
		c.Release()
		if out := a.WaitOK(); out != "done false nil 1\n" {
			t.Fatalf("A: %q", out)
		}
		start := time.Now()
		r := b.Wait(5 * time.Second)
		if r.Stdout != "done true nil 1\n" {
			t.Fatalf("B (after %v): %+v", time.Since(start), r)
		}
	})
}

// TestCancel: cancelling a waiter's context returns within 50 ms (median
// of five) holding the lock at its level; the Condition stays usable.
func TestCancel(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		s := newSetup(t, kind, 0)
		c := s.c
		var lat []time.Duration
		for trial := 0; trial < 5; trial++ {
			c.Acquire(context.Background())
			if kind != "lock" {
				c.Acquire(context.Background())
			}
			ctx, cancel := context.WithCancel(context.Background())
			var at atomic.Int64
			time.AfterFunc(30*time.Millisecond, func() { at.Store(time.Now().UnixNano()); cancel() })
			err := c.Wait(ctx)
			ret := time.Now()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v", err)
			}
			lat = append(lat, ret.Sub(time.Unix(0, at.Load())))
			st := c.State()
			want := 2
			if kind == "lock" {
				want = 1
			}
			if !st.Held || st.Level != want || st.Waiters != 0 || st.Notified != 0 {
				t.Fatalf("State after cancel = %+v", st)
			}
			c.Release()
			if kind != "lock" {
				c.Release()
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if lat[2] > 50*time.Millisecond {
			t.Fatalf("cancel latencies %v: median above 50 ms", lat)
		}
		// A cancelled context before waiting: nothing changes.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.Acquire(context.Background())
		if err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with a cancelled context = %v", err)
		}
		c.Release()
		// Still usable.
		done := make(chan error)
		go func() {
			c.Acquire(context.Background())
			ok, err := c.WaitTimeout(10 * time.Second)
			c.Release()
			if !ok && err == nil {
				err = errors.New("not notified")
			}
			done <- err
		}()
		waitFor(t, "waiter", 10*time.Second, func() bool { return c.State().Waiters == 1 })
		c.Acquire(context.Background())
		c.Notify(1)
		c.Release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeadWaiter: a waiter process killed while waiting must not take a
// Notify(1) to its grave: the next waiter gets it, whether the Notify
// comes at once (it lands on the dead slot and is passed on) or after the
// dead waiter was found (it skips the slot).
func TestDeadWaiter(t *testing.T) {
	for _, pause := range []time.Duration{0, 10 * checkEvery} {
		t.Run(fmt.Sprint(pause), func(t *testing.T) {
			s := newSetup(t, "lock", 0)
			c := s.c
			dead := proctest.Start(t, "waiter", s.path, s.kind, "0")
			waitFor(t, "dead waiting", 20*time.Second, func() bool { return c.State().Waiters == 1 })
			live := proctest.Start(t, "waiter", s.path, s.kind, "10000")
			waitFor(t, "live waiting", 20*time.Second, func() bool { return c.State().Waiters == 2 })
			dead.Kill()
			<-dead.Done()
			time.Sleep(pause)
			c.Acquire(context.Background())
			c.Notify(1)
			c.Release()
			start := time.Now()
			line := live.Line(5 * time.Second)
			if el := time.Since(start); line != "done true nil 1" || el > time.Second {
				t.Fatalf("live waiter after %v: %q", el, line)
			}
			live.WaitOK()
		})
	}
}

// TestTableFull: Wait with every slot taken is ErrTooManyWaiters and
// changes nothing; slots of dead waiters are reclaimed.
func TestTableFull(t *testing.T) {
	s := newSetup(t, "own", 2)
	c := s.c
	var cs []*proctest.Child
	for i := 0; i < 2; i++ {
		cs = append(cs, proctest.Start(t, "waiter", s.path, s.kind, "0"))
		waitFor(t, "waiter", 20*time.Second, func() bool { return c.State().Waiters == i+1 })
	}
	c.Acquire(context.Background())
	c.Acquire(context.Background())
	if err := c.Wait(context.Background()); !errors.Is(err, condition.ErrTooManyWaiters) {
		t.Fatalf("Wait on a full table = %v", err)
	}
	if ok, err := c.WaitTimeout(time.Second); ok || !errors.Is(err, condition.ErrTooManyWaiters) {
		t.Fatalf("WaitTimeout on a full table = %v, %v", ok, err)
	}
	if st := c.State(); st.Level != 2 || st.Waiters != 2 {
		t.Fatalf("State = %+v", st)
	}
	c.Release()
	c.Release()
	// Kill one waiter: its slot comes back.
	cs[0].Kill()
	<-cs[0].Done()
	c.Acquire(context.Background())
	if ok, err := c.WaitTimeout(30 * time.Millisecond); ok || err != nil {
		t.Fatalf("WaitTimeout after a waiter died = %v, %v", ok, err)
	}
	c.NotifyAll()
	c.Release()
	if out := cs[1].WaitOK(); out != "done true nil 1\n" {
		t.Fatalf("waiter: %q", out)
	}
}

// TestProducerConsumer: two producer and two consumer processes move
// items through a bounded buffer guarded by one lock with two Conditions
// (not empty, not full): every item arrives exactly once, so no wakeup
// was lost.
func TestProducerConsumer(t *testing.T) {
	for _, kind := range []string{"lock", "rlock"} {
		t.Run(kind, func(t *testing.T) {
			n := 50000 // per producer: 100,000 items, 100,000 Notify on each Condition
			if testing.Short() {
				n = 5000
			}
			s := newSetup(t, kind, 0)
			var cons, prods []*proctest.Child
			for i := 0; i < 2; i++ {
				cons = append(cons, proctest.Start(t, "prodcons", s.path, s.kind, "c", "0", "0"))
			}
			start := time.Now()
			for i := 0; i < 2; i++ {
				prods = append(prods, proctest.Start(t, "prodcons", s.path, s.kind, "p", fmt.Sprint(i), fmt.Sprint(n)))
			}
			proctest.WaitAll(prods)
			var cnt, sum uint64
			for _, out := range proctest.WaitAll(cons) {
				var c1, s1 uint64
				if _, err := fmt.Sscan(out, &c1, &s1); err != nil {
					t.Fatalf("consumer output %q: %v", out, err)
				}
				cnt += c1
				sum += s1
			}
			total := uint64(2 * n)
			if cnt != total || sum != total*(total+1)/2 {
				t.Fatalf("consumed %d items summing to %d, want %d and %d", cnt, sum, total, total*(total+1)/2)
			}
			t.Logf("%d items in %v", total, time.Since(start))
		})
	}
}

// TestPingPong: the W4 round trip between two processes, counts checked.
func TestPingPong(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		n := 2000
		s := newSetup(t, kind, 0)
		b := proctest.Start(t, "pingpong", s.path, s.kind, fmt.Sprint(n))
		if err := pingA(s, n); err != nil {
			t.Fatal(err)
		}
		b.WaitOK()
		if got := atomic.LoadUint64(word(s.mem, 4)); got != uint64(2*n) {
			t.Fatalf("turn = %d, want %d", got, 2*n)
		}
	})
}

func TestAttach(t *testing.T) {
	s := newSetup(t, "rlock", 4)
	c2, err := condition.Attach(s.mem[offCond:offCond2], s.lockOf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c2.State().Slots != 4 {
		t.Fatalf("Slots = %d", c2.State().Slots)
	}
	if _, err := condition.Attach(s.mem[offCond:offCond2], nil, nil); !errors.Is(err, condition.ErrLockType) {
		t.Fatalf("Attach without the lock = %v", err)
	}
	l, _ := makeLock(s.mem, "lock", false, nil) // the same bytes seen as a Lock
	_ = l
	type fake struct{ condition.Locker }
	if _, err := condition.Attach(s.mem[offCond:offCond2], fake{}, nil); !errors.Is(err, condition.ErrLockType) {
		t.Fatalf("Attach with a foreign Locker = %v", err)
	}
	if _, err := condition.Init(s.mem[offCond2:offLock], fake{}, nil); !errors.Is(err, condition.ErrLockType) {
		t.Fatalf("Init with a foreign Locker = %v", err)
	}
	var nilRL *rlock.RLock
	if _, err := condition.Init(s.mem[offCond2:offLock], nilRL, nil); !errors.Is(err, condition.ErrLockType) {
		t.Fatalf("Init with a nil *RLock = %v", err)
	}
	if _, err := condition.Init(s.mem[offCond2:offLock], nil, &condition.Options{Slots: condition.MaxSlots + 1}); err == nil {
		t.Fatal("Init with too many slots succeeded")
	}
	if _, err := condition.Init(s.mem[offCond2:offCond2+100], nil, nil); !errors.Is(err, errCorrupt) {
		t.Fatalf("Init of short memory = %v", err)
	}
	if !strings.Contains(fmt.Sprint(condition.ErrTooManyWaiters), "Slots") {
		t.Fatal("ErrTooManyWaiters should point to Options.Slots")
	}
}

// Release of a Condition whose lock the caller does not hold is
// ErrNotOwner, whatever the lock's kind.
func TestReleaseUnheldIsErrNotOwner(t *testing.T) {
	for _, kind := range []string{"own", "lock", "rlock"} {
		s := newSetup(t, kind, 4)
		err := s.c.Release()
		if !errors.Is(err, condition.ErrNotOwner) {
			t.Errorf("%s: Release of an unheld condition: %v, want ErrNotOwner", kind, err)
		}
	}
}

// TestWaitSleepsOnce: a waiter does not wake every check interval: after
// its first interval asleep the process's checker looks for dead waiters
// on behalf of all of them.
func TestWaitSleepsOnce(t *testing.T) {
	s := newSetup(t, "lock", 0)
	c := s.c
	c.Acquire(context.Background())
	defer c.Release()
	before := c.Stats().Waits
	if ok, err := c.WaitTimeout(10 * checkEvery); ok || err != nil {
		t.Fatalf("WaitTimeout = %v, %v; want a timeout", ok, err)
	}
	if n := c.Stats().Waits - before; n > 2 {
		t.Errorf("a Wait of 10 check intervals slept %d times, want at most 2", n)
	}
}
