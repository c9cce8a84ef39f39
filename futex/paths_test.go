//go:build linux

package futex_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

// bothPaths runs f on the hub and on the legacy one-sleeper-per-word path.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	for _, hub := range []bool{true, false} {
		name := "legacy"
		if hub {
			name = "hub"
		}
		t.Run(name, func(t *testing.T) {
			restore, ok := futex.SetHub(hub)
			defer restore()
			if !ok {
				t.Skip("kernel lacks futex_waitv")
			}
			f(t)
		})
	}
}

func TestAfterSaturates(t *testing.T) {
	now := time.Now()
	for _, d := range []time.Duration{futex.MaxTimeout, math.MaxInt64} {
		dl := futex.After(d)
		if dl.IsZero() || !dl.After(now.Add(futex.MaxTimeout)) {
			t.Errorf("After(%d) = %v, want beyond now+MaxTimeout", d, dl)
		}
	}
	if dl := futex.After(time.Second); dl.Sub(now) < time.Second || dl.Sub(now) > 2*time.Second {
		t.Errorf("After(1s) is %v from now", dl.Sub(now))
	}
}

// TestWaitHugeDeadlineIsForever: deadlines too far to represent in the
// kernel's timespec, made with After or with an overflowing time.Add,
// sleep until woken instead of failing with EINVAL or timing out.
func TestWaitHugeDeadlineIsForever(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for _, dl := range []time.Time{
			futex.After(math.MaxInt64),
			time.Now().Add(math.MaxInt64), // monotonic reading lost
			time.Now().Add(futex.MaxTimeout + time.Hour),
		} {
			var w uint32
			res := make(chan error, 1)
			go func() { res <- futex.Wait(context.Background(), &w, 0, dl) }()
			select {
			case err := <-res:
				t.Fatalf("deadline %v: returned at once with %v", dl, err)
			case <-time.After(50 * time.Millisecond):
			}
			atomic.StoreUint32(&w, 1)
			futex.Wake(&w, 1)
			if err := <-res; err != nil {
				t.Fatalf("deadline %v: woken wait returned %v", dl, err)
			}
		}
	})
}

// TestWaitNeverEarly: many short timed waits; each that reports ErrTimeout
// must have lasted its whole timeout by the monotonic clock.
func TestWaitNeverEarly(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 4000
	}
	bothPaths(t, func(t *testing.T) {
		var w uint32
		var wg sync.WaitGroup
		var early, timeouts atomic.Int64
		const workers = 4
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / workers {
					d := time.Duration(1+rand.IntN(100)) * time.Microsecond
					start := time.Now()
					err := futex.Wait(context.Background(), &w, 0, start.Add(d))
					el := time.Since(start)
					if errors.Is(err, futex.ErrTimeout) {
						timeouts.Add(1)
						if el < d {
							early.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		// Waits long enough to go through the hub and its Go timers.
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					d := 2*time.Millisecond + time.Duration(rand.IntN(2000))*time.Microsecond
					start := time.Now()
					err := futex.Wait(context.Background(), &w, 0, start.Add(d))
					if el := time.Since(start); errors.Is(err, futex.ErrTimeout) {
						timeouts.Add(1)
						if el < d {
							early.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		if early.Load() != 0 || timeouts.Load() == 0 {
			t.Fatalf("%d of %d timeouts early", early.Load(), timeouts.Load())
		}
	})
}

func TestCancelPrompt(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		words := make([]uint32, 64)
		var worst time.Duration
		for i := range words {
			ctx, cancel := context.WithCancel(context.Background())
			res := make(chan error, 1)
			go func() { res <- futex.Wait(ctx, &words[i], 0, time.Time{}) }()
			time.Sleep(200 * time.Microsecond)
			start := time.Now()
			cancel()
			if err := <-res; !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			worst = max(worst, time.Since(start))
		}
		if worst > 10*time.Millisecond {
			t.Fatalf("slowest cancellation took %v", worst)
		}
		t.Logf("slowest cancellation %v", worst)
	})
}

// TestHubManyWordsAcrossProcesses: 10,000 goroutines, each on its own word
// of a shared file, use at most 200 OS threads through the hub, and are
// all released by a waker in another process.
func TestHubManyWordsAcrossProcesses(t *testing.T) {
	restore, ok := futex.SetHub(true)
	defer restore()
	if !ok {
		t.Skip("kernel lacks futex_waitv")
	}
	const n = 10000
	path, mem := mapShared(t, 4*n+4096)
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), n)
	var wg sync.WaitGroup
	var woke atomic.Int64
	for i := range words {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadUint32(&words[i]) == 0 {
				if err := futex.Wait(context.Background(), &words[i], 0, futex.After(30*time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
			woke.Add(1)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	peak := threads(t)
	if woke.Load() != 0 {
		t.Fatalf("%d returned before the wake", woke.Load())
	}
	c := proctest.Start(t, "wakemany", path, strconv.Itoa(n))
	c.WaitOK()
	wg.Wait()
	peak = max(peak, threads(t))
	t.Logf("%d words: %d threads", n, peak)
	if peak > 200 {
		t.Fatalf("%d OS threads for %d blocked goroutines", peak, n)
	}
	if woke.Load() != n {
		t.Fatalf("woke %d of %d", woke.Load(), n)
	}
}

func roleWakeMany(args []string) error {
	n, _ := strconv.Atoi(args[1])
	mem, err := mapFile(args[0], 4*n+4096)
	if err != nil {
		return err
	}
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), n)
	for i := range words {
		atomic.StoreUint32(&words[i], 1)
		futex.Wake(&words[i], 1)
	}
	return nil
}

func TestWaitAny(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		words := make([]uint32, 50)
		addrs := make([]*uint32, len(words))
		vals := make([]uint32, len(words))
		for i := range words {
			addrs[i] = &words[i]
		}
		// A word already changed returns at once.
		vals[7] = 1
		if err := futex.WaitAny(context.Background(), addrs, vals, time.Time{}); err != nil {
			t.Fatal(err)
		}
		vals[7] = 0
		// Timeout, never early.
		start := time.Now()
		if err := futex.WaitAny(context.Background(), addrs, vals, start.Add(5*time.Millisecond)); !errors.Is(err, futex.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el < 5*time.Millisecond {
			t.Fatalf("timed out after %v", el)
		}
		// A wake on any one word releases the caller.
		for _, i := range []int{0, 31, 49} {
			res := make(chan error, 1)
			go func() { res <- futex.WaitAny(context.Background(), addrs, vals, futex.After(math.MaxInt64)) }()
			select {
			case err := <-res:
				t.Fatalf("returned before the wake: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			atomic.StoreUint32(&words[i], 1)
			futex.Wake(&words[i], 1)
			if err := <-res; err != nil {
				t.Fatal(err)
			}
			atomic.StoreUint32(&words[i], 0)
		}
		// Cancellation.
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- futex.WaitAny(ctx, addrs, vals, time.Time{}) }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	})
}

// TestHubRemappedAddress: a wait that timed out leaves its registration
// with a hub thread for a while; when the word's file is unmapped and
// another file mapped at the same address, a wait on the new word must be
// woken by a wake on the new file (the hub must not reuse the kernel's
// view of the old mapping).
func TestHubRemappedAddress(t *testing.T) {
	restore, ok := futex.SetHub(true)
	defer restore()
	if !ok {
		t.Skip("kernel lacks futex_waitv")
	}
	const size = 4096
	mapAt := func(addr unsafe.Pointer) (unsafe.Pointer, *os.File) {
		f, err := os.CreateTemp("/dev/shm", "mpipc-test-remap-*")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(f.Name())
		t.Cleanup(func() { f.Close() })
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		flags := uintptr(unix.MAP_SHARED)
		if addr != nil {
			flags |= unix.MAP_FIXED
		}
		// MmapPtr, not SYS_MMAP: on 386 that number is old_mmap, which
		// takes its arguments in a struct.
		p, err := unix.MmapPtr(int(f.Fd()), 0, addr, size, unix.PROT_READ|unix.PROT_WRITE, int(flags))
		if err != nil {
			t.Fatal(err)
		}
		return p, f
	}
	a, _ := mapAt(nil)
	w := (*uint32)(a) // memory outside the Go heap
	if err := futex.Wait(context.Background(), w, 0, time.Now().Add(3*time.Millisecond)); !errors.Is(err, futex.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	// The registration lingers; replace the mapping under it.
	unix.MunmapPtr(a, size)
	mapAt(a)
	defer unix.MunmapPtr(a, size)
	res := make(chan error, 1)
	go func() { res <- futex.Wait(context.Background(), w, 0, time.Now().Add(5*time.Second)) }()
	time.Sleep(20 * time.Millisecond)
	atomic.StoreUint32(w, 1)
	futex.Wake(w, 1)
	if err := <-res; err != nil {
		t.Fatalf("wait on the new mapping: %v (not woken)", err)
	}
}

// TestHubUnmapAfterTimeout: goroutines whose waits on a mapping timed out
// return, and the caller unmaps the mapping at once, while the hub thread
// is busy looking at its registrations (another goroutine keeps poking
// it). The hub thread must never read a word nobody waits on any more: a
// read of the unmapped page would crash the process.
func TestHubUnmapAfterTimeout(t *testing.T) {
	restore, ok := futex.SetHub(true)
	defer restore()
	if !ok {
		t.Skip("kernel lacks futex_waitv")
	}
	// Widen the window between the hub thread's look at who waits and its
	// read of the word, so that a Wait times out and its page goes inside
	// it.
	defer futex.SetRecheckHook(func() { time.Sleep(20 * time.Microsecond) })()
	const size = 4096
	words := 100
	rounds := 300
	if testing.Short() {
		rounds = 100
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() { // keeps the hub thread waking and rescanning
		defer churn.Done()
		var w uint32
		for {
			select {
			case <-stop:
				return
			default:
			}
			futex.Wait(context.Background(), &w, 0, time.Now().Add(50*time.Microsecond))
		}
	}()
	defer func() { close(stop); churn.Wait() }()
	for range rounds {
		p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		deadline := time.Now().Add(time.Millisecond)
		for i := range words {
			w := (*uint32)(unsafe.Add(p, 4*i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				futex.Wait(context.Background(), w, 0, deadline)
			}()
		}
		wg.Wait()
		if err := unix.MunmapPtr(p, size); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWakeLocal: WakeLocal releases this process's sleepers on a word
// that did not change (Wait and WaitAny), on both paths.
func TestWakeLocal(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		var w, other uint32
		res := make(chan error, 2)
		go func() { res <- futex.Wait(context.Background(), &w, 0, time.Now().Add(10*time.Second)) }()
		go func() {
			res <- futex.WaitAny(context.Background(), []*uint32{&other, &w}, []uint32{0, 0}, time.Now().Add(10*time.Second))
		}()
		for got := 0; got < 2; {
			time.Sleep(20 * time.Millisecond) // asleep (a legacy wake before that is lost)
			futex.WakeLocal(&w)
			select {
			case err := <-res:
				if err != nil {
					t.Fatalf("woken with %v", err)
				}
				got++
			case <-time.After(2 * time.Second):
				t.Fatalf("%d of 2 sleepers woken", got)
			}
		}
	})
}

// TestHubBorrowerHandsBack: through the hub, the first goroutine to wait
// on an idle waiter sleeps in futex_waitv itself (borrows the waiter) and
// serves the registrations that join meanwhile; when its own word is woken
// it returns at once and the waiter's goroutine takes over the rest. It
// runs in a fresh process on the hub alone, whose waiter is idle.
func TestHubBorrowerHandsBack(t *testing.T) {
	if !futex.Hub() {
		t.Skip("kernel lacks futex_waitv or MPIPC_FUTEX=legacy")
	}
	proctest.StartOpts(t, "borrow", proctest.Options{Env: []string{"MPIPC_FUTEX=hub"}}).WaitOK()
}

func roleBorrow([]string) error {
	words := make([]uint32, 3) // a: the borrower's, b and c: served by it
	a, b, c := &words[0], &words[1], &words[2]
	waitOn := func(w *uint32) chan error {
		res := make(chan error, 1)
		go func() { res <- futex.Wait(context.Background(), w, 0, time.Time{}) }()
		return res
	}
	wake := func(w *uint32) {
		atomic.StoreUint32(w, 1)
		futex.Wake(w, 1)
	}
	expect := func(res chan error, what string) error {
		select {
		case err := <-res:
			if err != nil {
				return fmt.Errorf("%s: %v", what, err)
			}
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s: not released", what)
		}
	}
	until := func(what string, f func() bool) error {
		for end := time.Now().Add(5 * time.Second); !f(); time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				return fmt.Errorf("never %s", what)
			}
		}
		return nil
	}

	ra := waitOn(a)
	if err := until("borrowed", func() bool { return futex.Borrowers() == 1 }); err != nil {
		return err
	}
	rb, rc := waitOn(b), waitOn(c)
	time.Sleep(20 * time.Millisecond) // registered, served by a's goroutine
	wake(b)
	if err := expect(rb, "b, served by the borrower"); err != nil {
		return err
	}
	wake(a)
	if err := expect(ra, "the borrower"); err != nil {
		return err
	}
	if err := until("handed back", func() bool { return futex.Borrowers() == 0 }); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond)
	wake(c)
	if err := expect(rc, "c, after the hand-back"); err != nil {
		return err
	}
	if err := until("idle", futex.HubIdle); err != nil {
		return err
	}

	// A borrower's deadline is the kernel's: never early, and not a
	// millisecond late as a Go timer can be.
	var d uint32
	start := time.Now()
	err := futex.Wait(context.Background(), &d, 0, start.Add(30*time.Millisecond))
	if el := time.Since(start); !errors.Is(err, futex.ErrTimeout) || el < 30*time.Millisecond || el > 2*time.Second {
		return fmt.Errorf("timed wait: %v after %v", err, el)
	}
	// It left nothing behind: a timed-out borrower drops its registration.
	if !futex.HubIdle() {
		return errors.New("a timed-out borrower's registration stayed")
	}
	return nil
}
