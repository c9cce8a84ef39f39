//go:build linux

package value

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

// roleStopHoldingWriter: PATH — takes the writer lock of the Value[wide64]
// in PATH, as a Store does while it copies, and stops itself (SIGSTOP)
// holding it.
func roleStopHoldingWriter(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	v, err := Attach[wide64](mem, childOpts(args[0]))
	if err != nil {
		return err
	}
	v.c.lockWriter()
	proctest.SignalReady()
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	select {}
}

// inTime runs f, which should give up after want, and fails the test if
// it returned before want or more than 100 ms after it.
// A call still running 5 s after want fails the test at once (and stays
// blocked in its goroutine).
func inTime(t *testing.T, what string, want time.Duration, f func()) {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(want + 5*time.Second):
		t.Fatalf("%s still blocked after %v, want it to give up after %v", what, time.Since(start), want)
	}
	if got := time.Since(start); got < want || got > want+100*time.Millisecond {
		t.Errorf("%s returned after %v, want %v (+100 ms at most)", what, got, want)
	}
}

// TestStoppedWideWriter: a process stopped while it holds the writer lock
// of a wide Value (a Store in progress) does not make UpdateContext ignore
// its context, and the bounded forms of Store, Swap and CompareAndSwap
// give up in time, changing nothing. Once the process is killed, writes go
// through again.
func TestStoppedWideWriter(t *testing.T) {
	size, _ := SizeOf[wide64]()
	mem, path := mapFile(t, size)
	initial := pattern(1)
	reg := regtest.Registry(t, path)
	v, err := Init(mem[:size], initial, &Options{CheckInterval: 10 * time.Millisecond, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := AttachRaw[wide64](mem[:size], &Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "stopHoldingWriter", path)
	c.Expect(proctest.Ready, 10*time.Second)
	proctest.WaitStopped(t, c.Pid())

	const d = 300 * time.Millisecond
	inTime(t, "UpdateContext", d, func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		ran := false
		if _, err := v.UpdateContext(ctx, func(x *wide64) { ran = true }); !errors.Is(err, context.DeadlineExceeded) || ran {
			t.Errorf("UpdateContext: %v (fn ran: %v), want context.DeadlineExceeded", err, ran)
		}
	})
	// The lock of the Value was released by the UpdateContext that gave up.
	if ok, err := v.own.TryAcquire(); !ok || err != nil {
		t.Errorf("the Value's lock is still held after UpdateContext gave up: %v", err)
	} else {
		v.Lock().Release()
	}
	const short = 100 * time.Millisecond
	ctxShort := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), short)
	}
	inTime(t, "StoreContext", short, func() {
		ctx, cancel := ctxShort()
		defer cancel()
		if err := v.StoreContext(ctx, pattern(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("StoreContext: %v", err)
		}
	})
	inTime(t, "StoreTimeout", short, func() {
		if v.StoreTimeout(pattern(2), short) {
			t.Error("StoreTimeout stored while a stopped writer holds the lock")
		}
	})
	inTime(t, "SwapTimeout", short, func() {
		if _, ok := v.SwapTimeout(pattern(2), short); ok {
			t.Error("SwapTimeout swapped")
		}
	})
	inTime(t, "SwapContext", short, func() {
		ctx, cancel := ctxShort()
		defer cancel()
		if _, err := v.SwapContext(ctx, pattern(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SwapContext: %v", err)
		}
	})
	inTime(t, "CompareAndSwapTimeout", short, func() {
		if _, ok := v.CompareAndSwapTimeout(initial, pattern(2), short); ok {
			t.Error("CompareAndSwapTimeout compared")
		}
	})
	inTime(t, "CompareAndSwapContext", short, func() {
		ctx, cancel := ctxShort()
		defer cancel()
		if _, err := v.CompareAndSwapContext(ctx, initial, pattern(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CompareAndSwapContext: %v", err)
		}
	})
	inTime(t, "RawValue.StoreTimeout", short, func() {
		if raw.StoreTimeout(pattern(2), short) {
			t.Error("RawValue.StoreTimeout stored")
		}
	})
	inTime(t, "RawValue.CompareAndSwapContext", short, func() {
		ctx, cancel := ctxShort()
		defer cancel()
		if _, err := raw.CompareAndSwapContext(ctx, initial, pattern(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RawValue.CompareAndSwapContext: %v", err)
		}
	})
	inTime(t, "Try forms", 0, func() {
		if v.TryStore(pattern(2)) || raw.TryStore(pattern(2)) {
			t.Error("TryStore stored")
		}
		if _, ok := v.TrySwap(pattern(2)); ok {
			t.Error("TrySwap swapped")
		}
		if _, ok := raw.TrySwap(pattern(2)); ok {
			t.Error("RawValue.TrySwap swapped")
		}
		if _, ok := v.TryCompareAndSwap(initial, pattern(2)); ok {
			t.Error("TryCompareAndSwap compared")
		}
		if _, ok := raw.TryCompareAndSwap(initial, pattern(2)); ok {
			t.Error("RawValue.TryCompareAndSwap compared")
		}
	})
	if got := v.Load(); got != initial {
		t.Fatalf("a write that gave up changed the value: %v", got)
	}
	c.Kill()
	c.Wait(10 * time.Second)
	// The writer is dead: the next writer takes its lock over.
	if !v.StoreTimeout(pattern(3), 5*time.Second) {
		t.Fatal("StoreTimeout failed after the stopped writer was killed")
	}
	if old, ok := raw.TrySwap(pattern(4)); !ok || old != pattern(3) {
		t.Fatalf("TrySwap: %v %v", old, ok)
	}
	if swapped, ok := v.CompareAndSwapTimeout(pattern(4), pattern(5), time.Second); !swapped || !ok {
		t.Fatalf("CompareAndSwapTimeout: swapped %v ok %v", swapped, ok)
	}
	if swapped, err := raw.CompareAndSwapContext(context.Background(), pattern(4), pattern(6)); swapped || err != nil {
		t.Fatalf("CompareAndSwapContext with a stale old: swapped %v, %v", swapped, err)
	}
	if old, err := v.SwapContext(context.Background(), pattern(7)); err != nil || old != pattern(5) {
		t.Fatalf("SwapContext: %v %v", old, err)
	}
	if err := raw.StoreContext(context.Background(), pattern(8)); err != nil || v.Load() != pattern(8) {
		t.Fatalf("StoreContext: %v", err)
	}
}

// TestBoundedNarrow: for T of at most 8 bytes the bounded forms never wait
// and always succeed, even with a done context.
func TestBoundedNarrow(t *testing.T) {
	size, _ := SizeOf[int64]()
	mem, _ := mapFile(t, size)
	v, err := Init[int64](mem[:size], 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !v.TryStore(2) || !v.StoreTimeout(3, 0) || v.StoreContext(ctx, 4) != nil || v.Load() != 4 {
		t.Fatalf("narrow stores: value %d", v.Load())
	}
	if old, ok := v.TrySwap(5); !ok || old != 4 {
		t.Fatal("TrySwap")
	}
	if old, ok := v.SwapTimeout(6, -1); !ok || old != 5 {
		t.Fatal("SwapTimeout")
	}
	if old, err := v.SwapContext(ctx, 7); err != nil || old != 6 {
		t.Fatal("SwapContext")
	}
	if s, ok := v.TryCompareAndSwap(7, 8); !s || !ok {
		t.Fatal("TryCompareAndSwap")
	}
	if s, ok := v.CompareAndSwapTimeout(7, 9, 0); s || !ok {
		t.Fatal("CompareAndSwapTimeout with a stale old")
	}
	if s, err := v.CompareAndSwapContext(ctx, 8, 9); !s || err != nil {
		t.Fatal("CompareAndSwapContext")
	}
}

// TestBoundedCancelledWide: a wide write with a context already done gives
// up only if it would have to wait; a free writer lock is simply taken.
func TestBoundedCancelledWide(t *testing.T) {
	size, _ := SizeOf[wide64]()
	mem, _ := mapFile(t, size)
	v, err := Init(mem[:size], pattern(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.StoreContext(ctx, pattern(2)); err != nil || v.Load() != pattern(2) {
		t.Fatalf("StoreContext with a free writer lock: %v", err)
	}
	v.c.lockWriter()
	if err := v.StoreContext(ctx, pattern(3)); !errors.Is(err, context.Canceled) {
		t.Fatalf("StoreContext with a held writer lock and a done ctx: %v", err)
	}
	if _, err := v.UpdateContext(ctx, func(*wide64) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("UpdateContext: %v", err)
	}
	v.c.unlockWriter()
	if v.Load() != pattern(2) {
		t.Fatal("value changed")
	}
}
