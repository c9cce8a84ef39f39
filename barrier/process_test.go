//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

// Layout of the test mapping: the barrier in the first 4 KiB, then one
// cache line per party for its published round, then counters, then one
// word per round for the indices seen.
const (
	offRounds  = 4096 // + 64*party: int32 round published before the barrier
	offActions = 8192 // action runs
	offGo      = 8256 // start flag
	offMasks   = 8320 // + 4*round: bit idx set by the party that got idx
	maxRounds  = 12000
	memSize    = offMasks + 4*maxRounds + 4096
)

func TestMain(m *testing.M) {
	proctest.Register("rounds", childRounds)
	proctest.Register("waitbroken", childWaitBroken)
	proctest.Register("idle", childIdle)
	proctest.Register("actor", childActor)
	proctest.Register("w5", childW5)
	proctest.Register("observer", childObserver)
	proctest.Register("drain", childDrain)
	proctest.Register("timeout", childTimeout)
	proctest.Register("stats-wait", childStatsWait)
	proctest.Main(m)
}

func attachChild(path string, opts *barrier.Options) ([]byte, *barrier.Barrier, error) {
	mem, err := mapShared(path)
	if err != nil {
		return nil, nil, err
	}
	o := barrier.Options{}
	if opts != nil {
		o = *opts
	}
	if o.Registry, err = regtest.Open(path); err != nil {
		return nil, nil, err
	}
	b, err := barrier.Attach(mem[:4096], &o)
	return mem, b, err
}

func waitGo(mem []byte) {
	for atomic.LoadUint32(u32(mem, offGo)) == 0 {
		runtime.Gosched()
	}
}

// childRounds: party me of parties runs n rounds, publishing its round
// before the barrier, recording its index, and checking after the
// barrier that no party is behind or more than one round ahead.
func childRounds(args []string) error {
	mem, b, err := openChild(args[0], nil)
	if err != nil {
		return err
	}
	defer b.Close()
	parties, _ := strconv.Atoi(args[1])
	me, _ := strconv.Atoi(args[2])
	n, _ := strconv.Atoi(args[3])
	proctest.SignalReady()
	waitGo(mem)
	for r := 0; r < n; r++ {
		atomic.StoreInt32(i32(mem, offRounds+64*me), int32(r))
		idx, err := b.Wait(context.Background())
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		if idx < 0 || idx >= parties {
			return fmt.Errorf("round %d: index %d", r, idx)
		}
		for {
			m := atomic.LoadUint32(u32(mem, offMasks+4*r))
			if m&(1<<idx) != 0 {
				return fmt.Errorf("round %d: index %d given twice", r, idx)
			}
			if atomic.CompareAndSwapUint32(u32(mem, offMasks+4*r), m, m|1<<idx) {
				break
			}
		}
		for j := 0; j < parties; j++ {
			o := atomic.LoadInt32(i32(mem, offRounds+64*j))
			if o < int32(r) || o > int32(r)+1 {
				return fmt.Errorf("round %d: party %d published round %d", r, j, o)
			}
		}
	}
	return nil
}

// TestFourProcessesRounds: Barrier(4) with four processes for 10,000
// rounds; each round every index 0..3 appears once and nobody runs ahead.
func TestFourProcessesRounds(t *testing.T) {
	const parties = 4
	rounds := 10000
	if testing.Short() {
		rounds = 1000
	}
	// In a segment, by name: Create here, Open in the children.
	path, mem, b := newBarrierSeg(t, parties, nil)
	var cs []*proctest.Child
	for i := 0; i < parties; i++ {
		c := proctest.Start(t, "rounds", path, strconv.Itoa(parties), strconv.Itoa(i), strconv.Itoa(rounds))
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	start := time.Now()
	atomic.StoreUint32(u32(mem, offGo), 1)
	proctest.WaitAll(cs)
	el := time.Since(start)
	for r := 0; r < rounds; r++ {
		if m := atomic.LoadUint32(u32(mem, offMasks+4*r)); m != 1<<parties-1 {
			t.Fatalf("round %d: indices seen %04b", r, m)
		}
	}
	st := b.State()
	if st.Rounds != uint64(rounds) || st.Broken || st.Waiting != 0 {
		t.Fatalf("State = %+v", st)
	}
	t.Logf("%d rounds of Barrier(4) over 4 processes in %v (%.0f rounds/s)", rounds, el, float64(rounds)/el.Seconds())
}

// childWaitBroken waits at the barrier and reports the outcome.
func childWaitBroken(args []string) error {
	_, b, err := openChild(args[0], nil)
	if err != nil {
		return err
	}
	defer b.Close()
	proctest.SignalReady()
	_, err = b.WaitTimeout(30 * time.Second)
	switch {
	case errors.Is(err, barrier.ErrTimedOut):
		fmt.Println("timedout")
	case errors.Is(err, barrier.ErrBrokenBarrier):
		fmt.Println("broken")
	default:
		fmt.Println("wait:", err)
	}
	return nil
}

// childIdle registers at the barrier and never arrives.
func childIdle(args []string) error {
	_, _, err := attachChild(args[0], nil)
	if err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Minute)
	return nil
}

// testKillParty: three processes wait at a Barrier(4) and one party is
// SIGKILLed: the fourth, which registered but never arrived, or one of the
// three waiting. The survivors that wait must get ErrBrokenBarrier within
// a second.
func testKillParty(t *testing.T, arrived bool) {
	path, _, b := newBarrier(t, 4, nil)
	var waiters []*proctest.Child
	for i := 0; i < 3-boolInt(arrived); i++ {
		c := proctest.Start(t, "waitbroken", path)
		c.Expect(proctest.Ready, 0)
		waiters = append(waiters, c)
	}
	role := "idle"
	if arrived {
		role = "waitbroken"
	}
	victim := proctest.Start(t, role, path)
	victim.Expect(proctest.Ready, 0)
	waitFor(t, "three waiters", func() bool { return b.NWaiting() == 3 })
	time.Sleep(150 * time.Millisecond) // let them fall asleep
	victim.Kill()
	killed := time.Now()
	for _, c := range waiters {
		line := c.Line(5 * time.Second)
		el := time.Since(killed)
		if line != "broken" {
			t.Fatalf("waiter reported %q, want broken", line)
		}
		if el > time.Second {
			t.Fatalf("waiter broke out %v after the kill, want < 1 s", el)
		}
		t.Logf("waiter broke out %v after the kill", el)
	}
	// Reap only after every waiter has reported: a race-instrumented child
	// sleeps a second at exit (GORACE atexit_sleep_ms), which must not be
	// counted against the next waiter's latency.
	for _, c := range waiters {
		c.WaitOK()
	}
	if !b.Broken() {
		t.Fatal("barrier not broken")
	}
	// The dead party's slot was freed; after Reset the barrier serves
	// four new processes.
	for _, r := range b.State().Registered {
		if !r.Alive {
			t.Fatalf("dead process %d still registered", r.Pid)
		}
	}
	b.Reset()
	var cs []*proctest.Child
	for i := 0; i < 4; i++ {
		cs = append(cs, proctest.Start(t, "rounds", path, "4", strconv.Itoa(i), "10"))
	}
	for _, c := range cs {
		c.Expect(proctest.Ready, 0)
	}
	goFlag(t, path)
	proctest.WaitAll(cs)
}

func goFlag(t *testing.T, path string) {
	mem, err := mapShared(path)
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(u32(mem, offGo), 1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestKillPartyBeforeArrival(t *testing.T) { testKillParty(t, false) }
func TestKillPartyWhileWaiting(t *testing.T)  { testKillParty(t, true) }

// TestTimeoutAcrossProcesses: one process's timeout breaks the barrier for
// the others.
func TestTimeoutAcrossProcesses(t *testing.T) {
	path, _, b := newBarrier(t, 3, nil)
	c := proctest.Start(t, "waitbroken", path)
	c.Expect(proctest.Ready, 0)
	waitFor(t, "the waiter", func() bool { return b.NWaiting() == 1 })
	if _, err := b.WaitTimeout(100 * time.Millisecond); !errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("WaitTimeout = %v, want ErrTimedOut", err)
	}
	if line := c.Line(5 * time.Second); line != "broken" {
		t.Fatalf("other process reported %q, want broken", line)
	}
	c.WaitOK()
}

// childActor runs n rounds of a Barrier(3) whose action, in every process,
// counts runs in the shared memory; after each round the count must be
// exactly the round number: one action per round, before the release.
func childActor(args []string) error {
	var mem []byte
	var mine int
	action := func() error {
		atomic.AddInt32(i32(mem, offActions), 1)
		mine++
		return nil
	}
	mem, b, err := attachChild(args[0], &barrier.Options{Action: action})
	if err != nil {
		return err
	}
	defer b.Close()
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	waitGo(mem)
	for r := 1; r <= n; r++ {
		idx, err := b.Wait(context.Background())
		if err != nil {
			return err
		}
		if got := atomic.LoadInt32(i32(mem, offActions)); got != int32(r) {
			return fmt.Errorf("round %d: %d action runs", r, got)
		}
		_ = idx
	}
	fmt.Println("mine", mine)
	return nil
}

func TestActionAcrossProcesses(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	path, mem, _ := newBarrier(t, 3, nil)
	var cs []*proctest.Child
	for i := 0; i < 3; i++ {
		c := proctest.Start(t, "actor", path, strconv.Itoa(n))
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	atomic.StoreUint32(u32(mem, offGo), 1)
	total := 0
	for _, out := range proctest.WaitAll(cs) {
		var k int
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if _, err := fmt.Sscanf(lines[len(lines)-1], "mine %d", &k); err != nil {
			t.Fatalf("child output %q", out)
		}
		total += k
	}
	if total != n || load(mem, offActions) != int32(n) {
		t.Fatalf("actions: %d by the processes' own count, %d shared, want %d", total, load(mem, offActions), n)
	}
}

// childObserver opens the barrier without registering and waits to be
// killed.
func childObserver(args []string) error {
	if _, _, err := openChild(args[0], &barrier.Options{Observe: true}); err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Minute)
	return nil
}

// testBreakAcrossProcesses: three processes wait at a Barrier(4); this
// process breaks their round with brk (Abort or Reset); each must report
// ErrBrokenBarrier; after a Reset, four new processes pass ten rounds.
func testBreakAcrossProcesses(t *testing.T, brk func(*barrier.Barrier)) {
	name, mem, b := newBarrierSeg(t, 4, nil)
	var cs []*proctest.Child
	for i := 0; i < 3; i++ {
		c := proctest.Start(t, "waitbroken", name)
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	waitFor(t, "three waiters", func() bool { return b.NWaiting() == 3 })
	brk(b)
	for _, c := range cs {
		if line := c.Line(5 * time.Second); line != "broken" {
			t.Fatalf("waiter reported %q, want broken", line)
		}
		c.WaitOK()
	}
	b.Reset()
	if b.Broken() || b.NWaiting() != 0 {
		t.Fatalf("after Reset: %+v", b.State())
	}
	cs = cs[:0]
	for i := 0; i < 4; i++ {
		c := proctest.Start(t, "rounds", name, "4", strconv.Itoa(i), "10")
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	atomic.StoreUint32(u32(mem, offGo), 1)
	proctest.WaitAll(cs)
}

func TestAbortAcrossProcesses(t *testing.T) {
	testBreakAcrossProcesses(t, (*barrier.Barrier).Abort)
}

func TestResetAcrossProcesses(t *testing.T) {
	testBreakAcrossProcesses(t, (*barrier.Barrier).Reset)
}

// TestFailingActionAcrossProcesses: the last party's action fails in this
// process; it gets the action's error, the two waiting processes
// ErrBrokenBarrier.
func TestFailingActionAcrossProcesses(t *testing.T) {
	name, _, b := newBarrierSeg(t, 3, &barrier.Options{Action: func() error { return errAction }})
	var cs []*proctest.Child
	for i := 0; i < 2; i++ {
		c := proctest.Start(t, "waitbroken", name)
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	waitFor(t, "two waiters", func() bool { return b.NWaiting() == 2 })
	if _, err := b.Wait(context.Background()); err != errAction {
		t.Fatalf("last party's Wait = %v, want the action's error", err)
	}
	for _, c := range cs {
		if line := c.Line(5 * time.Second); line != "broken" {
			t.Fatalf("waiter reported %q, want broken", line)
		}
		c.WaitOK()
	}
}
