//go:build linux

package futex_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

func TestMain(m *testing.M) {
	proctest.Register("waker", roleWaker)
	proctest.Register("sleeper", roleSleeper)
	proctest.Register("wakemany", roleWakeMany)
	proctest.Register("ping", rolePing)
	proctest.Register("borrow", roleBorrow)
	proctest.Main(m)
}

// mapShared maps a fresh /dev/shm file of n bytes; see proctest.SharedFile.
func mapShared(tb testing.TB, n int) (string, []byte) {
	tb.Helper()
	return proctest.SharedFile(tb, n)
}

// mapFile maps the file at path, of n bytes (child side).
func mapFile(path string, n int) ([]byte, error) {
	mem, err := proctest.MapFile(path)
	if err == nil && len(mem) != n {
		return nil, fmt.Errorf("mapped %d bytes, want %d", len(mem), n)
	}
	return mem, err
}

func word(mem []byte) *uint32 { return (*uint32)(unsafe.Pointer(&mem[0])) }

func TestWaitReturnsAtOnceOnMismatch(t *testing.T) {
	var w uint32 = 1
	if err := futex.Wait(context.Background(), &w, 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// TestWaitMismatchAfterDeadline: a caller whose word keeps changing (a
// hostile peer rewrites it) loops on Wait, which returns at once on a
// mismatch; the loop must still end with ErrTimeout at its deadline
// instead of spinning past it for as long as the peer writes.
func TestWaitMismatchAfterDeadline(t *testing.T) {
	var w uint32 = 1
	start := time.Now() // before the deadline is set: elapsed is then at least 20ms
	deadline := start.Add(20 * time.Millisecond)
	for i := 0; ; i++ {
		err := futex.Wait(context.Background(), &w, 0, deadline) // never equal: the peer "changed" it
		if errors.Is(err, futex.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("Wait kept returning nil on a mismatch %v past its deadline (%d calls)", time.Since(deadline), i)
		}
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("timed out after %v, before the 20ms deadline", el)
	}
}

func TestWaitTimeout(t *testing.T) {
	var w uint32
	start := time.Now()
	err := futex.Wait(context.Background(), &w, 0, time.Now().Add(20*time.Millisecond))
	if !errors.Is(err, futex.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond || el > 2*time.Second {
		t.Fatalf("waited %v for a 20ms timeout", el)
	}
	// A past deadline times out without sleeping.
	if err := futex.Wait(context.Background(), &w, 0, time.Now().Add(-time.Second)); !errors.Is(err, futex.ErrTimeout) {
		t.Fatalf("past deadline: %v", err)
	}
}

func TestWaitContextCancelWakesLeaderAndFollowers(t *testing.T) {
	var w uint32
	ctx, cancel := context.WithCancel(context.Background())
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { errs <- futex.Wait(ctx, &w, 0, time.Time{}) }()
	}
	time.Sleep(50 * time.Millisecond) // let them sleep: one in the kernel, the rest parked
	start := time.Now()
	cancel()
	for i := 0; i < n; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("cancellation took %v", el)
	}
	// A context that is already done returns at once.
	if err := futex.Wait(ctx, &w, 0, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
}

func TestWakeReleasesAllLocalWaiters(t *testing.T) {
	var w uint32
	const n = 100
	var wg sync.WaitGroup
	var woke atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadUint32(&w) == 0 {
				if err := futex.Wait(context.Background(), &w, 0, time.Now().Add(10*time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
			woke.Add(1)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	atomic.StoreUint32(&w, 1)
	futex.Wake(&w, 1) // one kernel wake releases every goroutine of this process
	wg.Wait()
	if woke.Load() != n {
		t.Fatalf("woke %d of %d", woke.Load(), n)
	}
}

func threads(tb testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	tb.Fatal("no Threads line")
	return 0
}

// TestWaitSparesThreads: goroutines blocked on one word do not each hold an
// OS thread. Without the leader/follower scheme this needs ~1000 threads.
func TestWaitSparesThreads(t *testing.T) {
	var w uint32
	const n = 1000
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadUint32(&w) == 0 {
				futex.Wait(context.Background(), &w, 0, time.Time{})
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if th := threads(t); th >= 50 {
		t.Errorf("%d goroutines blocked on one word use %d threads, want < 50", n, th)
	}
	atomic.StoreUint32(&w, 1)
	futex.WakeAll(&w)
	wg.Wait()
}

// Cross-process: a sleeper process blocks on the word; the parent changes it
// and wakes. The sleeper must see the change and exit.
func TestWakeAcrossProcesses(t *testing.T) {
	path, mem := mapShared(t, 4096)
	c := proctest.Start(t, "sleeper", path)
	c.Expect(proctest.Ready, 0)
	time.Sleep(20 * time.Millisecond)
	atomic.StoreUint32(word(mem), 7)
	futex.Wake(word(mem), 1)
	out := c.WaitOK()
	if strings.TrimSpace(out) != "ready\nwoke 7" {
		t.Fatalf("sleeper said %q", out)
	}
}

func roleSleeper(args []string) error {
	mem, err := mapFile(args[0], 4096)
	if err != nil {
		return err
	}
	w := word(mem)
	proctest.SignalReady()
	deadline := time.Now().Add(20 * time.Second)
	for atomic.LoadUint32(w) == 0 {
		if err := futex.Wait(context.Background(), w, 0, deadline); err != nil {
			return err
		}
	}
	println := func(s string) { os.Stdout.WriteString(s + "\n") }
	println("woke " + strconv.Itoa(int(atomic.LoadUint32(w))))
	return nil
}

// Ping-pong across processes through one word: exercises spin + sleep + wake
// on both sides. Each side waits for its turn's value.
func TestPingPongAcrossProcesses(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	path, mem := mapShared(t, 4096)
	c := proctest.Start(t, "waker", path, strconv.Itoa(n))
	w := word(mem)
	for i := 0; i < n; i++ {
		// parent owns even values: wait for 2i, write 2i+1
		for v := atomic.LoadUint32(w); v != uint32(2*i); v = atomic.LoadUint32(w) {
			if err := futex.Wait(context.Background(), w, v, time.Now().Add(10*time.Second)); err != nil {
				t.Fatalf("round %d: %v (word %d)", i, err, v)
			}
		}
		atomic.StoreUint32(w, uint32(2*i+1))
		futex.Wake(w, 1)
	}
	c.WaitOK()
}

func roleWaker(args []string) error {
	mem, err := mapFile(args[0], 4096)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	w := word(mem)
	for i := 0; i < n; i++ {
		for v := atomic.LoadUint32(w); v != uint32(2*i+1); v = atomic.LoadUint32(w) {
			if err := futex.Wait(context.Background(), w, v, time.Now().Add(10*time.Second)); err != nil {
				return err
			}
		}
		atomic.StoreUint32(w, uint32(2*i+2))
		futex.Wake(w, 1)
	}
	return nil
}

func TestSpinIsBounded(t *testing.T) {
	i := 0
	start := time.Now()
	for futex.Spin(i) {
		i++
		if i > 10000 {
			t.Fatal("Spin never stops")
		}
	}
	futex.SpinDone(false)
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Fatalf("a full spin took %v", el)
	}
	t.Logf("spin: %d iterations in %v", i, time.Since(start))
	_ = runtime.NumCPU()
}

// TestSpinProbeRestoresBudget: with the budget at its floor (every spin
// ran out), one spin in every few still runs the full budget, and if that
// one succeeds the full budget is back; otherwise two processes waiting on
// each other stay at the floor and sleep on every message.
func TestSpinProbeRestoresBudget(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("spinning is passive on one CPU; the budget is still probed, but this test counts active iterations")
	}
	for futex.SpinLimit() > 8 {
		futex.SpinDone(false)
	}
	floor := futex.SpinLimit()
	longest := 0
	for range 64 {
		n := 0
		for futex.Spin(n) {
			n++
		}
		longest = max(longest, n)
		if n > int(floor)+8 { // a probe: it succeeds
			futex.SpinDone(true)
			break
		}
		futex.SpinDone(false)
	}
	if longest <= int(floor)+8 {
		t.Fatalf("64 spins at the floor of %d iterations, none longer than %d", floor, longest)
	}
	if got := futex.SpinLimit(); got <= floor*2 {
		t.Fatalf("after a probe succeeded the budget is %d iterations, floor %d", got, floor)
	}
}

func BenchmarkWakeNoWaiters(b *testing.B) {
	b.ReportAllocs()
	var w uint32
	for i := 0; i < b.N; i++ {
		futex.Wake(&w, 1)
	}
}
