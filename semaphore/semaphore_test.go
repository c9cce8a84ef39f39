//go:build linux

package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// Layout of the test mapping: the semaphore(s) first, then counters, each
// on its own cache line.
const (
	offSem     = 0
	offSem2    = 64
	offInside  = 128 // processes inside the guarded section
	offMax     = 192 // most ever seen inside
	offArrived = 256 // processes about to wait
	offPassed  = 320 // processes that got through
	offRound   = 384 // ping-pong: B's round
	memSize    = 4096
)

func TestMain(m *testing.M) {
	proctest.Register("section", childSection)
	proctest.Register("acquirer", childAcquirer)
	proctest.Register("pong", childPong)
	proctest.Register("stats-release", childStatsRelease)
	proctest.Main(m)
}

func newSem(t testing.TB, value int) (string, []byte, *semaphore.Semaphore) {
	t.Helper()
	path, mem := newShared(t, memSize)
	s, err := semaphore.Init(mem[offSem:offSem+semaphore.Size], value, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, mem, s
}

func attachChild(path string) ([]byte, *semaphore.Semaphore, error) {
	mem, err := mapShared(path)
	if err != nil {
		return nil, nil, err
	}
	s, err := semaphore.Attach(mem[offSem:offSem+semaphore.Size], nil)
	return mem, s, err
}

func TestConstructorErrors(t *testing.T) {
	_, mem := newShared(t, memSize)
	if _, err := semaphore.Init(mem[:semaphore.Size], -1, nil); !errors.Is(err, semaphore.ErrNegative) {
		t.Errorf("Init(-1) = %v, want ErrNegative", err)
	}
	if _, err := semaphore.InitBounded(mem[:semaphore.Size], -1, nil); !errors.Is(err, semaphore.ErrNegative) {
		t.Errorf("InitBounded(-1) = %v, want ErrNegative", err)
	}
	if over := int64(semaphore.MaxValue) + 1; over <= math.MaxInt { // a 32-bit int cannot name it
		if _, err := semaphore.Init(mem[:semaphore.Size], int(over), nil); !errors.Is(err, semaphore.ErrOverflow) {
			t.Errorf("Init(MaxValue+1) = %v, want ErrOverflow", err)
		}
	}
	if _, err := semaphore.Init(mem[:semaphore.Size-1], 1, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(short) = %v, want ErrCorrupt", err)
	}
	if _, err := semaphore.Init(mem[4:4+semaphore.Size], 1, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init(misaligned) = %v, want ErrCorrupt", err)
	}
	// Attach on zeroed memory: no magic.
	if _, err := semaphore.Attach(mem[512:512+semaphore.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(zeroes) = %v, want ErrCorrupt", err)
	}
	// Kind mismatch both ways.
	if _, err := semaphore.Init(mem[:semaphore.Size], 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := semaphore.AttachBounded(mem[:semaphore.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("AttachBounded(plain) = %v, want ErrCorrupt", err)
	}
	if _, err := semaphore.InitBounded(mem[64:64+semaphore.Size], 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := semaphore.Attach(mem[64:64+semaphore.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(bounded) = %v, want ErrCorrupt", err)
	}
	// A bounded semaphore whose value exceeds its bound is corrupt.
	atomic.StoreUint32(u32(mem, 64), 5<<1)
	if _, err := semaphore.AttachBounded(mem[64:64+semaphore.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("AttachBounded(value > bound) = %v, want ErrCorrupt", err)
	}
	// A plain semaphore with a bound is corrupt.
	atomic.StoreUint32(u32(mem, 16), 3)
	if _, err := semaphore.Attach(mem[:semaphore.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Attach(plain with bound) = %v, want ErrCorrupt", err)
	}
}

func TestDefaultsAndValue(t *testing.T) {
	_, mem, s := newSem(t, 0)
	if s.Value() != 0 {
		t.Fatalf("Value = %d, want 0", s.Value())
	}
	if ok, _ := s.TryAcquire(); ok {
		t.Fatal("TryAcquire on 0 succeeded")
	}
	if err := s.Release(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(3); err != nil {
		t.Fatal(err)
	}
	if s.Value() != 4 {
		t.Fatalf("Value = %d, want 4", s.Value())
	}
	for i := 0; i < 4; i++ {
		if err := s.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := s.TryAcquire(); ok {
		t.Fatal("fifth acquire succeeded")
	}
	// Another handle on the same memory sees the same semaphore.
	s2, err := semaphore.Attach(mem[offSem:offSem+semaphore.Size], nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Release(2)
	if s.Value() != 2 {
		t.Fatalf("Value via first handle = %d, want 2", s.Value())
	}
	st := s.State()
	if st.Value != 2 || st.Bounded || st.Waiters {
		t.Fatalf("State = %+v", st)
	}
}

func TestReleaseInvalidCount(t *testing.T) {
	_, _, s := newSem(t, 1)
	for _, n := range []int{0, -1} {
		if err := s.Release(n); !errors.Is(err, semaphore.ErrInvalidCount) {
			t.Errorf("Release(%d) = %v, want ErrInvalidCount", n, err)
		}
	}
	if s.Value() != 1 {
		t.Fatalf("Value = %d after invalid releases, want 1", s.Value())
	}
}

func TestOverflow(t *testing.T) {
	_, _, s := newSem(t, semaphore.MaxValue-1)
	if err := s.Release(2); !errors.Is(err, semaphore.ErrOverflow) {
		t.Fatalf("Release past MaxValue = %v, want ErrOverflow", err)
	}
	if s.Value() != semaphore.MaxValue-1 {
		t.Fatalf("Value = %d after overflow, want unchanged", s.Value())
	}
	if err := s.Release(1); err != nil {
		t.Fatalf("Release to MaxValue: %v", err)
	}
	if s.Value() != semaphore.MaxValue {
		t.Fatalf("Value = %d, want MaxValue", s.Value())
	}
}

func TestTimeouts(t *testing.T) {
	_, _, s := newSem(t, 0)
	for _, d := range []time.Duration{0, -time.Second} {
		start := time.Now()
		ok, err := s.AcquireTimeout(d)
		if ok || err != nil {
			t.Errorf("AcquireTimeout(%v) on 0 = %v, %v", d, ok, err)
		}
		if el := time.Since(start); el > 200*time.Millisecond {
			t.Errorf("AcquireTimeout(%v) took %v: it must not wait", d, el)
		}
	}
	start := time.Now()
	ok, err := s.AcquireTimeout(100 * time.Millisecond)
	el := time.Since(start)
	if ok || err != nil {
		t.Fatalf("AcquireTimeout(100ms) on 0 = %v, %v", ok, err)
	}
	if el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("AcquireTimeout(100ms) returned after %v", el)
	}
	s.Release(1)
	for _, d := range []time.Duration{0, -time.Second} {
		s.Release(1)
		if ok, _ := s.AcquireTimeout(d); !ok {
			t.Errorf("AcquireTimeout(%v) with a unit free failed", d)
		}
	}
	if ok, _ := s.AcquireTimeout(time.Second); !ok {
		t.Fatal("AcquireTimeout(1s) with a unit free failed")
	}
	// A waiter released in time.
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.Release(1)
	}()
	if ok, _ := s.AcquireTimeout(10 * time.Second); !ok {
		t.Fatal("AcquireTimeout did not see a Release")
	}
	if s.Value() != 0 {
		t.Fatalf("Value = %d, want 0", s.Value())
	}
}

func TestBounded(t *testing.T) {
	_, mem := newShared(t, memSize)
	s, err := semaphore.InitBounded(mem[:semaphore.Size], 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(1); !errors.Is(err, semaphore.ErrReleasedTooMany) {
		t.Fatalf("Release on a full BoundedSemaphore = %v, want ErrReleasedTooMany", err)
	}
	if s.Value() != 2 {
		t.Fatalf("Value = %d after over-release, want 2", s.Value())
	}
	s.Acquire(context.Background())
	s.Acquire(context.Background())
	if err := s.Release(3); !errors.Is(err, semaphore.ErrReleasedTooMany) {
		t.Fatalf("Release(3) from 0 with bound 2 = %v, want ErrReleasedTooMany", err)
	}
	if s.Value() != 0 {
		t.Fatalf("Value = %d after refused Release(3), want 0", s.Value())
	}
	if err := s.Release(2); err != nil {
		t.Fatalf("Release(2) up to the bound: %v", err)
	}
	if s.Bound() != 2 || s.Value() != 2 {
		t.Fatalf("Bound, Value = %d, %d", s.Bound(), s.Value())
	}
	if st := s.State(); !st.Bounded || st.Bound != 2 || st.Value != 2 {
		t.Fatalf("State = %+v", st)
	}
	// A BoundedSemaphore(0) can never be released.
	z, err := semaphore.InitBounded(mem[64:64+semaphore.Size], 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Release(1); !errors.Is(err, semaphore.ErrReleasedTooMany) {
		t.Fatalf("Release on BoundedSemaphore(0) = %v", err)
	}
	// Another process's handle enforces the same bound.
	b2, err := semaphore.AttachBounded(mem[:semaphore.Size], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Release(1); !errors.Is(err, semaphore.ErrReleasedTooMany) {
		t.Fatalf("Release through a second handle = %v", err)
	}
	if err := b2.Release(0); !errors.Is(err, semaphore.ErrInvalidCount) {
		t.Fatalf("Release(0) = %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	_, _, s := newSem(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire(cancelled ctx) = %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := s.Acquire(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("cancellation took %v", el)
	}
	if s.Value() != 0 {
		t.Fatalf("Value = %d after cancelled Acquire, want 0", s.Value())
	}
	// The cancelled waiter took nothing and left nothing behind: a unit
	// released now is there for the next acquirer.
	s.Release(1)
	if s.Value() != 1 {
		t.Fatalf("Value = %d after Release, want 1", s.Value())
	}
	if ok, _ := s.TryAcquire(); !ok {
		t.Fatal("TryAcquire after cancelled Acquire failed")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with deadline = %v", err)
	}
	if s.State().Value != 0 {
		t.Fatal("value changed")
	}
}

// childSection enters the section guarded by the semaphore iters times,
// checking the number of processes inside.
func childSection(args []string) error {
	mem, s, err := openChild(args[0])
	if err != nil {
		return err
	}
	iters, _ := strconv.Atoi(args[1])
	inside, maxp := i32(mem, offInside), i32(mem, offMax)
	for i := 0; i < iters; i++ {
		if err := s.Acquire(context.Background()); err != nil {
			return err
		}
		n := atomic.AddInt32(inside, 1)
		for {
			m := atomic.LoadInt32(maxp)
			if n <= m || atomic.CompareAndSwapInt32(maxp, m, n) {
				break
			}
		}
		if n > 2 {
			return fmt.Errorf("%d processes inside a Semaphore(2) section", n)
		}
		for j := 0; j < 50; j++ { // stay inside a little
			atomic.LoadInt32(inside)
		}
		if i%16 == 0 {
			time.Sleep(10 * time.Microsecond)
		}
		atomic.AddInt32(inside, -1)
		if err := s.Release(1); err != nil {
			return err
		}
	}
	return nil
}

func TestSixProcessesSemaphore2(t *testing.T) {
	iters := 20000
	if testing.Short() {
		iters = 3000
	}
	// In a segment, by name: Create here, Open in the children.
	path, mem, s := newSemSeg(t, 2)
	var cs []*proctest.Child
	for i := 0; i < 6; i++ {
		cs = append(cs, proctest.Start(t, "section", path, strconv.Itoa(iters)))
	}
	proctest.WaitAll(cs)
	if m := load(mem, offMax); m > 2 || m < 1 {
		t.Fatalf("at most %d processes were inside at once, want 1..2", m)
	}
	if s.Value() != 2 {
		t.Fatalf("Value = %d at the end, want 2", s.Value())
	}
	t.Logf("max inside: %d; state %+v", load(mem, offMax), s.State())
}

// childAcquirer announces itself, waits up to 20 s for one unit, and
// counts itself through.
func childAcquirer(args []string) error {
	mem, s, err := attachChild(args[0])
	if err != nil {
		return err
	}
	atomic.AddInt32(i32(mem, offArrived), 1)
	ok, err := s.AcquireTimeout(20 * time.Second)
	if err != nil || !ok {
		return fmt.Errorf("AcquireTimeout = %v, %v", ok, err)
	}
	atomic.AddInt32(i32(mem, offPassed), 1)
	return nil
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

// TestReleaseNWakesN: five processes wait; Release(3) lets exactly three
// through, Release(2) the other two.
func TestReleaseNWakesN(t *testing.T) {
	path, mem, s := newSem(t, 0)
	var cs []*proctest.Child
	for i := 0; i < 5; i++ {
		cs = append(cs, proctest.Start(t, "acquirer", path))
	}
	waitFor(t, "five waiters", func() bool { return load(mem, offArrived) == 5 })
	waitFor(t, "the waiters bit", func() bool { return s.State().Waiters })
	time.Sleep(100 * time.Millisecond)
	if p := load(mem, offPassed); p != 0 {
		t.Fatalf("%d passed before any Release", p)
	}
	if err := s.Release(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three through", func() bool { return load(mem, offPassed) >= 3 })
	time.Sleep(200 * time.Millisecond)
	if p := load(mem, offPassed); p != 3 {
		t.Fatalf("Release(3) let %d through, want 3", p)
	}
	if v := s.Value(); v != 0 {
		t.Fatalf("Value = %d, want 0", v)
	}
	if err := s.Release(2); err != nil {
		t.Fatal(err)
	}
	proctest.WaitAll(cs)
	if p := load(mem, offPassed); p != 5 {
		t.Fatalf("%d passed, want 5", p)
	}
	if v := s.Value(); v != 0 {
		t.Fatalf("Value = %d at the end, want 0", v)
	}
}

// TestKilledWaiter: a waiter SIGKILLed while registered leaves the waiters
// bit set; the next Release pays one wake, clears it, and the semaphore
// goes on working with other processes.
func TestKilledWaiter(t *testing.T) {
	path, mem, s := newSem(t, 0)
	c := proctest.Start(t, "acquirer", path)
	waitFor(t, "the waiter", func() bool { return load(mem, offArrived) == 1 })
	waitFor(t, "the waiters bit", func() bool { return s.State().Waiters })
	c.Kill()
	<-c.Done()
	if !s.State().Waiters {
		t.Fatal("waiters bit cleared by a dead process")
	}
	if err := s.Release(1); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Waiters || st.Value != 1 {
		t.Fatalf("after Release: %+v, want value 1 and no waiters", st)
	}
	// The semaphore works: a new process takes the unit.
	c2 := proctest.Start(t, "acquirer", path)
	c2.WaitOK()
	if s.Value() != 0 || load(mem, offPassed) != 1 {
		t.Fatalf("value %d, passed %d", s.Value(), load(mem, offPassed))
	}
	// And a new waiter is woken by a Release.
	c3 := proctest.Start(t, "acquirer", path)
	waitFor(t, "the third waiter", func() bool { return load(mem, offArrived) == 3 })
	time.Sleep(50 * time.Millisecond)
	s.Release(1)
	c3.WaitOK()
}

// TestGoroutinesHammer checks exclusion among goroutines of one process
// (in-process claim; the cross-process one is TestSixProcessesSemaphore2).
func TestGoroutinesHammer(t *testing.T) {
	_, _, s := newSem(t, 3)
	var inside, maxIn atomic.Int32
	done := make(chan error)
	iters := 2000
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < iters; i++ {
				if err := s.Acquire(context.Background()); err != nil {
					done <- err
					return
				}
				n := inside.Add(1)
				if n > maxIn.Load() {
					maxIn.Store(n)
				}
				inside.Add(-1)
				if err := s.Release(1); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if maxIn.Load() > 3 || s.Value() != 3 {
		t.Fatalf("max inside %d, value %d", maxIn.Load(), s.Value())
	}
}
