//go:build linux

package event_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

const (
	offEv      = 0
	offEv2     = 64
	offArrived = 128 // processes about to wait
	offPassed  = 192 // processes whose wait returned true
	offRound   = 256 // ping-pong: B's round
	offGo      = 320 // ping-pong start flag
	memSize    = 4096
)

func TestMain(m *testing.M) {
	proctest.Register("waiter", childWaiter)
	proctest.Register("pong", childPong)
	proctest.Register("stats-set", childStatsSet)
	proctest.Main(m)
}

func newEvent(t testing.TB) (string, []byte, *event.Event) {
	t.Helper()
	path, mem := newShared(t, memSize)
	e, err := event.Init(mem[offEv:offEv+event.Size], nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, mem, e
}

func attachChild(path string) ([]byte, *event.Event, error) {
	mem, err := mapShared(path)
	if err != nil {
		return nil, nil, err
	}
	e, err := event.Attach(mem[offEv:offEv+event.Size], nil)
	return mem, e, err
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
	if _, err := event.Init(mem[:event.Size-1], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(short) = %v, want ErrCorrupt", err)
	}
	if _, err := event.Init(mem[4:4+event.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(misaligned) = %v, want ErrCorrupt", err)
	}
	if _, err := event.Attach(mem[:event.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(zeroes) = %v, want ErrCorrupt", err)
	}
	if _, err := event.Init(mem[:event.Size], nil); err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(u32(mem, 8), event.Version+1)
	if _, err := event.Attach(mem[:event.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(other version) = %v, want ErrCorrupt", err)
	}
}

func TestIsSet(t *testing.T) {
	_, mem, e := newEvent(t)
	e2, err := event.Attach(mem[offEv:offEv+event.Size], nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.IsSet() {
		t.Fatal("new Event is set")
	}
	e.Set()
	if !e.IsSet() || !e2.IsSet() {
		t.Fatal("Set did not set")
	}
	g := e.State().Generation
	e.Set() // set when set: nothing changes
	if e.State().Generation != g {
		t.Fatal("Set on a set Event bumped the generation")
	}
	e2.Clear()
	if e.IsSet() || e2.IsSet() {
		t.Fatal("Clear did not clear")
	}
	e.Clear()
	if e.IsSet() {
		t.Fatal("Clear of a clear Event set it")
	}
	e.Set()
	if st := e.State(); !st.Set || st.Generation != g+1 || st.Waiters {
		t.Fatalf("State = %+v, want set, generation %d", st, g+1)
	}
}

func TestTimeouts(t *testing.T) {
	_, _, e := newEvent(t)
	for _, d := range []time.Duration{0, -time.Second} {
		start := time.Now()
		if e.WaitTimeout(d) {
			t.Errorf("WaitTimeout(%v) on a clear Event = true", d)
		}
		if el := time.Since(start); el > 200*time.Millisecond {
			t.Errorf("WaitTimeout(%v) took %v", d, el)
		}
	}
	start := time.Now()
	if e.WaitTimeout(100 * time.Millisecond) {
		t.Fatal("WaitTimeout(100ms) on a clear Event = true")
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("WaitTimeout(100ms) returned after %v", el)
	}
	e.Set()
	for _, d := range []time.Duration{0, -time.Second, time.Second} {
		if !e.WaitTimeout(d) {
			t.Errorf("WaitTimeout(%v) on a set Event = false", d)
		}
	}
	if err := e.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Set while waiting.
	e.Clear()
	time.AfterFunc(50*time.Millisecond, e.Set)
	if !e.WaitTimeout(10 * time.Second) {
		t.Fatal("WaitTimeout missed a Set")
	}
}

func TestContextCancel(t *testing.T) {
	_, _, e := newEvent(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(cancelled) = %v", err)
	}
	before := e.State()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if err := e.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("cancellation took %v", el)
	}
	after := e.State()
	if after.Set || after.Generation != before.Generation {
		t.Fatalf("cancelled Wait changed the event: %+v -> %+v", before, after)
	}
	// A Set on a set event from a cancelled-with-set context: still true.
	e.Set()
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := e.Wait(ctx); err != nil {
		t.Fatalf("Wait(cancelled) on a set Event = %v, want nil", err)
	}
}

// TestSetThenClearGoroutines: goroutines of one process that wait are all
// released by Set, even when Clear follows at once.
func TestSetThenClearGoroutines(t *testing.T) {
	_, _, e := newEvent(t)
	const n = 8
	var started atomic.Int32
	res := make(chan bool, n)
	for i := 0; i < n; i++ {
		go func() {
			started.Add(1)
			res <- e.WaitTimeout(20 * time.Second)
		}()
	}
	waitFor(t, "goroutines", func() bool { return started.Load() == n })
	waitFor(t, "a sleeper", func() bool { return e.State().Waiters })
	time.Sleep(100 * time.Millisecond)
	e.Set()
	e.Clear()
	for i := 0; i < n; i++ {
		if !<-res {
			t.Fatal("a waiter returned false after Set+Clear")
		}
	}
	if e.IsSet() {
		t.Fatal("event still set")
	}
}

// childWaiter announces itself, waits up to 20 s, and counts itself
// through if the wait returned true.
func childWaiter(args []string) error {
	mem, e, err := openChild(args[0])
	if err != nil {
		return err
	}
	atomic.AddInt32(i32(mem, offArrived), 1)
	if !e.WaitTimeout(20 * time.Second) {
		return fmt.Errorf("WaitTimeout = false")
	}
	atomic.AddInt32(i32(mem, offPassed), 1)
	return nil
}

// testTenProcesses: ten processes wait; one Set releases them all, even
// when a Clear follows at once. The Event lives in a segment, by name.
func testTenProcesses(t *testing.T, clear bool) {
	path, mem, e := newEventSeg(t)
	var cs []*proctest.Child
	for i := 0; i < 10; i++ {
		cs = append(cs, proctest.Start(t, "waiter", path))
	}
	waitFor(t, "ten waiters", func() bool { return load(mem, offArrived) == 10 })
	waitFor(t, "a sleeper", func() bool { return e.State().Waiters })
	// Give the last arrivals time to get into the kernel; the test does
	// not depend on it for Set alone, and Set+Clear must release the
	// ones asleep.
	time.Sleep(300 * time.Millisecond)
	if p := load(mem, offPassed); p != 0 {
		t.Fatalf("%d passed before Set", p)
	}
	e.Set()
	if clear {
		e.Clear()
	}
	proctest.WaitAll(cs)
	if p := load(mem, offPassed); p != 10 {
		t.Fatalf("%d of 10 released", p)
	}
	if e.IsSet() == clear {
		t.Fatalf("IsSet = %v at the end", e.IsSet())
	}
}

func TestTenProcessesOneSet(t *testing.T)      { testTenProcesses(t, false) }
func TestTenProcessesSetAndClear(t *testing.T) { testTenProcesses(t, true) }

// TestKilledWaiter: a waiter killed while registered leaves the waiters
// bit; the next Set clears it and the Event goes on working.
func TestKilledWaiter(t *testing.T) {
	path, mem, e := newEvent(t)
	c := proctest.Start(t, "waiter", path)
	waitFor(t, "the waiter", func() bool { return load(mem, offArrived) == 1 })
	waitFor(t, "the waiters bit", func() bool { return e.State().Waiters })
	c.Kill()
	<-c.Done()
	e.Set()
	if st := e.State(); st.Waiters || !st.Set {
		t.Fatalf("after Set: %+v", st)
	}
	e.Clear()
	c2 := proctest.Start(t, "waiter", path)
	waitFor(t, "the second waiter", func() bool { return load(mem, offArrived) == 2 })
	time.Sleep(50 * time.Millisecond)
	e.Set()
	c2.WaitOK()
}

func BenchmarkEventIsSet(b *testing.B) {
	_, _, e := newEvent(b)
	e.Set()
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if e.IsSet() {
			n++
		}
	}
	if n != b.N {
		b.Fatal("not set")
	}
}

func BenchmarkEventSetWhenSet(b *testing.B) {
	_, _, e := newEvent(b)
	e.Set()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Set()
	}
}

func BenchmarkEventWaitWhenSet(b *testing.B) {
	_, _, e := newEvent(b)
	e.Set()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := e.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventSetClearUncontended(b *testing.B) {
	_, _, e := newEvent(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Set()
		e.Clear()
	}
	if e.State().Waiters {
		b.Fatal("waiters bit set")
	}
}

// childPong is side B of the W4 Event ping-pong: wait e1, clear it,
// publish the round, set e2.
func childPong(args []string) error {
	mem, e1, err := attachChild(args[0])
	if err != nil {
		return err
	}
	e2, err := event.Attach(mem[offEv2:offEv2+event.Size], nil)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	for atomic.LoadUint32(u32(mem, offGo)) == 0 {
		runtime.Gosched()
	}
	round := i32(mem, offRound)
	for i := 0; i < n; i++ {
		if err := e1.Wait(context.Background()); err != nil {
			return err
		}
		e1.Clear()
		atomic.StoreInt32(round, int32(i+1))
		e2.Set()
	}
	return nil
}

// BenchmarkW4EventPingPong is workload W4 (py-mp-event) of
// ../shared/anchors: two processes, two Events; A sets e1 and waits for
// e2, B waits for e1 and sets e2, each clearing what it waited for. One op
// is one round trip.
func BenchmarkW4EventPingPong(b *testing.B) {
	path, mem, e1 := newEvent(b)
	e2, err := event.Init(mem[offEv2:offEv2+event.Size], nil)
	if err != nil {
		b.Fatal(err)
	}
	c := proctest.Start(b, "pong", path, strconv.Itoa(b.N))
	c.Expect(proctest.Ready, 0)
	b.ReportAllocs()
	b.ResetTimer()
	atomic.StoreUint32(u32(mem, offGo), 1)
	round := i32(mem, offRound)
	sleeps, wakes := e2.Stats().Waits, e1.Stats().Wakes
	for i := 0; i < b.N; i++ {
		e1.Set()
		if err := e2.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
		e2.Clear()
		if r := atomic.LoadInt32(round); r != int32(i+1) {
			b.Fatalf("round %d: B published %d", i, r)
		}
	}
	b.StopTimer()
	c.WaitOK()
	// A's sleeps in Wait and wakes made by its Set, per round trip: 0
	// while both sides spin, 1 each when every handoff goes through the
	// kernel. Load-independent, unlike the time.
	b.ReportMetric(float64(e2.Stats().Waits-sleeps)/float64(b.N), "sleeps/op")
	b.ReportMetric(float64(e1.Stats().Wakes-wakes)/float64(b.N), "wakes/op")
}
