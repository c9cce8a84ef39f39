//go:build linux

package rlock_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

// inOther runs f in a new goroutine and waits for it.
func inOther(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

func TestAcquireReleaseRecursion(t *testing.T) {
	r, _, _ := newRLock(t)
	for i := 1; i <= 3; i++ {
		if err := r.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := r.Level(); got != i {
			t.Fatalf("level after %d acquires = %d", i, got)
		}
	}
	if ok, err := r.TryAcquire(); !ok || err != nil || r.Level() != 4 {
		t.Fatalf("TryAcquire by owner = %v, %v, level %d", ok, err, r.Level())
	}
	if ok, err := r.AcquireTimeout(time.Millisecond); !ok || err != nil || r.Level() != 5 {
		t.Fatalf("AcquireTimeout by owner = %v, %v, level %d", ok, err, r.Level())
	}
	st := r.State()
	if !st.Held || st.Level != 5 || st.HolderPid == 0 || !st.HolderAlive || st.HolderGoid == 0 {
		t.Fatalf("State = %+v", st)
	}
	for i := 5; i >= 1; i-- {
		if !r.Owned() {
			t.Fatalf("not owned at level %d", i)
		}
		if err := r.Release(); err != nil {
			t.Fatalf("release at level %d: %v", i, err)
		}
	}
	if r.Owned() || r.Level() != 0 || r.State().Held {
		t.Fatalf("still held after the last release: %+v", r.State())
	}
	// One release too many: Python's "cannot release un-acquired lock".
	err := r.Release()
	if !errors.Is(err, rlock.ErrNotOwner) || !errors.Is(err, rlock.ErrNotLocked) {
		t.Fatalf("release of unlocked RLock = %v", err)
	}
	if _, err := r.ReleaseAll(); !errors.Is(err, rlock.ErrNotOwner) {
		t.Fatalf("ReleaseAll of unlocked RLock = %v", err)
	}
}

func TestReleaseByOtherGoroutine(t *testing.T) {
	r, _, _ := newRLock(t)
	r.Acquire(context.Background())
	r.Acquire(context.Background())
	inOther(func() {
		err := r.Release()
		if !errors.Is(err, rlock.ErrNotOwner) || errors.Is(err, rlock.ErrNotLocked) {
			t.Errorf("release by another goroutine = %v", err)
		}
		if _, err := r.ReleaseAll(); !errors.Is(err, rlock.ErrNotOwner) {
			t.Errorf("ReleaseAll by another goroutine = %v", err)
		}
		if err := r.Consistent(); !errors.Is(err, rlock.ErrNotInconsistent) {
			t.Errorf("Consistent by another goroutine = %v", err)
		}
		if r.Owned() || r.Level() != 0 {
			t.Errorf("another goroutine sees itself as owner")
		}
	})
	if r.Level() != 2 {
		t.Fatalf("level changed by a failed release: %d", r.Level())
	}
	if err := r.Consistent(); !errors.Is(err, rlock.ErrNotInconsistent) {
		t.Fatalf("Consistent on a consistent lock = %v", err)
	}
	r.Release()
	r.Release()
}

func TestTimeouts(t *testing.T) {
	r, _, _ := newRLock(t)
	r.Acquire(context.Background())
	defer r.Release()
	inOther(func() {
		for _, d := range []time.Duration{0, -time.Second} {
			start := time.Now()
			ok, err := r.AcquireTimeout(d)
			if ok || err != nil || time.Since(start) > 500*time.Millisecond {
				t.Errorf("AcquireTimeout(%v) on a held lock = %v, %v after %v", d, ok, err, time.Since(start))
			}
		}
		if ok, err := r.TryAcquire(); ok || err != nil {
			t.Errorf("TryAcquire on a held lock = %v, %v", ok, err)
		}
		start := time.Now()
		ok, err := r.AcquireTimeout(100 * time.Millisecond)
		if el := time.Since(start); ok || err != nil || el < 100*time.Millisecond {
			t.Errorf("AcquireTimeout(100ms) on a held lock = %v, %v after %v", ok, err, el)
		}
		if ok, err := r.AcquireLevelTimeout(10*time.Millisecond, 2); ok || err != nil {
			t.Errorf("AcquireLevelTimeout on a held lock = %v, %v", ok, err)
		}
	})
	// Free lock: timeouts of 0 and below acquire at once.
	r2, _, _ := newRLock(t)
	for _, d := range []time.Duration{0, -time.Second, time.Second} {
		if ok, err := r2.AcquireTimeout(d); !ok || err != nil {
			t.Fatalf("AcquireTimeout(%v) on a free lock = %v, %v", d, ok, err)
		}
		r2.Release()
	}
}

func TestAcquireCancel(t *testing.T) {
	r, _, _ := newRLock(t)
	r.Acquire(context.Background())
	inOther(func() {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		err := r.Acquire(ctx)
		if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
			t.Errorf("cancelled Acquire = %v after %v", err, time.Since(start))
		}
		if err := r.AcquireLevel(ctx, 2); !errors.Is(err, context.Canceled) {
			t.Errorf("AcquireLevel with a cancelled ctx = %v", err)
		}
	})
	if r.Level() != 1 {
		t.Fatalf("level after a cancelled acquire by another goroutine: %d", r.Level())
	}
	r.Release()
	if r.State().Held {
		t.Fatalf("cancelled acquire left the lock held: %+v", r.State())
	}
	if err := r.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Release()
}

func TestReleaseAllAcquireLevel(t *testing.T) {
	r, _, _ := newRLock(t)
	for i := 0; i < 3; i++ {
		r.Acquire(context.Background())
	}
	lv, err := r.ReleaseAll()
	if lv != 3 || err != nil {
		t.Fatalf("ReleaseAll = %d, %v", lv, err)
	}
	if r.State().Held {
		t.Fatal("held after ReleaseAll")
	}
	// Another goroutine can take it now.
	inOther(func() {
		if ok, _ := r.TryAcquire(); !ok {
			t.Error("free lock not acquirable after ReleaseAll")
			return
		}
		r.Release()
	})
	if err := r.AcquireLevel(context.Background(), 3); err != nil || r.Level() != 3 {
		t.Fatalf("AcquireLevel(3) = %v, level %d", err, r.Level())
	}
	if err := r.AcquireLevel(context.Background(), 2); err != nil || r.Level() != 5 {
		t.Fatalf("AcquireLevel(2) by owner = %v, level %d", err, r.Level())
	}
	if ok, err := r.AcquireLevelTimeout(time.Second, 1); !ok || err != nil || r.Level() != 6 {
		t.Fatalf("AcquireLevelTimeout by owner = %v, %v, level %d", ok, err, r.Level())
	}
	if err := r.AcquireLevel(context.Background(), 0); !errors.Is(err, rlock.ErrLevel) {
		t.Fatalf("AcquireLevel(0) = %v", err)
	}
	if _, err := r.AcquireLevelTimeout(time.Second, -1); !errors.Is(err, rlock.ErrLevel) {
		t.Fatalf("AcquireLevelTimeout(-1) = %v", err)
	}
	if lv, err := r.ReleaseAll(); lv != 6 || err != nil {
		t.Fatalf("ReleaseAll = %d, %v", lv, err)
	}
	if uint64(math.MaxInt) < rlock.MaxLevel {
		return // a 32-bit int cannot name levels near MaxLevel
	}
	var ml uint64 = rlock.MaxLevel
	maxLevel := int(ml)
	if err := r.AcquireLevel(context.Background(), maxLevel+1); !errors.Is(err, rlock.ErrLevel) {
		t.Fatalf("AcquireLevel(MaxLevel+1) = %v", err)
	}
	if err := r.AcquireLevel(context.Background(), maxLevel); err != nil || r.Level() != maxLevel {
		t.Fatalf("AcquireLevel(MaxLevel) = %v, level %d", err, r.Level())
	}
	if err := r.Acquire(context.Background()); !errors.Is(err, rlock.ErrLevel) || r.Level() != maxLevel {
		t.Fatalf("Acquire above MaxLevel = %v, level %d", err, r.Level())
	}
	if ok, err := r.TryAcquire(); ok || !errors.Is(err, rlock.ErrLevel) {
		t.Fatalf("TryAcquire above MaxLevel = %v, %v", ok, err)
	}
	if lv, err := r.ReleaseAll(); lv != maxLevel || err != nil {
		t.Fatalf("ReleaseAll = %d, %v", lv, err)
	}
}

// TestGoroutinesExclude: goroutines of one process exclude each other
// (the RLock is not merely per process).
func TestGoroutinesExclude(t *testing.T) {
	r, mem, _ := newRLock(t)
	gs, iters := 4, 2000
	if testing.Short() {
		iters = 300
	}
	if err := hammer(r, mem, gs, iters); err != nil {
		t.Fatal(err)
	}
	if got := atomic.LoadUint64(word(mem, 2)); got != uint64(gs*iters) {
		t.Fatalf("counter = %d, want %d", got, gs*iters)
	}
}

// TestBlocksLikeProcess: while a goroutine holds the RLock at level 2,
// another goroutine of its process and another process see the same thing:
// TryAcquire false, AcquireTimeout false, Release ErrNotOwner, and an
// Acquire that returns only after the holder's last release.
func TestBlocksLikeProcess(t *testing.T) {
	r, mem, path := newRLock(t)
	r.Acquire(context.Background())
	r.Acquire(context.Background())
	child := proctest.Start(t, "contender", path)
	var mu sync.Mutex
	var lines []string
	done := make(chan error, 1)
	go func() {
		done <- contend(r, word(mem, 1), func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() })
	}()
	want := []string{"try false nil", "timeout false nil", "release-not-owner true false"}
	for _, w := range want {
		if got := child.Line(10 * time.Second); got != w {
			t.Fatalf("child: %q, want %q", got, w)
		}
	}
	time.Sleep(200 * time.Millisecond) // both contenders now sleep in Acquire
	mu.Lock()
	got := fmt.Sprint(lines)
	mu.Unlock()
	if got != fmt.Sprint(want) {
		t.Fatalf("goroutine: %v, want %v", got, want)
	}
	r.Release()
	if r.Level() != 1 {
		t.Fatal("level")
	}
	time.Sleep(50 * time.Millisecond) // level 1 still excludes both
	atomic.StoreUint64(word(mem, 1), 1)
	r.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := child.Line(10 * time.Second); got != "acquire nil after-release true level 1" {
		t.Fatalf("child: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := lines[3]; got != "acquire nil after-release true level 1" {
		t.Fatalf("goroutine: %q", got)
	}
	child.WaitOK()
}

// TestReleaseByOtherProcess: a process that does not hold the RLock gets
// ErrNotOwner from Release, and the holder's level is untouched.
func TestReleaseByOtherProcess(t *testing.T) {
	r, mem, path := newRLock(t)
	child := proctest.Start(t, "holder", path, "3")
	if got := child.Line(10 * time.Second); got != "held 3" {
		t.Fatalf("child: %q", got)
	}
	err := r.Release()
	if !errors.Is(err, rlock.ErrNotOwner) || errors.Is(err, rlock.ErrNotLocked) {
		t.Fatalf("release by another process = %v", err)
	}
	if st := r.State(); st.Level != 3 || st.HolderPid != child.Pid() || !st.HolderAlive {
		t.Fatalf("State = %+v", st)
	}
	if ok, err := r.AcquireTimeout(30 * time.Millisecond); ok || err != nil {
		t.Fatalf("AcquireTimeout = %v, %v", ok, err)
	}
	atomic.StoreUint64(word(mem, 0), 1)
	if got := child.Line(10 * time.Second); got != "released" {
		t.Fatalf("child: %q", got)
	}
	child.WaitOK()
	if ok, err := r.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire after the child's release = %v, %v", ok, err)
	}
	r.Release()
}

// TestOwnerDeath: SIGKILL a holder at level 3; the parent's Acquire gets
// ErrOwnerDead within a second, at level 1; after Consistent the lock works.
func TestOwnerDeath(t *testing.T) {
	r, _, path := newRLock(t)
	child := proctest.Start(t, "killed", path, "3")
	if got := child.Line(10 * time.Second); got != "held 3" {
		t.Fatalf("child: %q", got)
	}
	child.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := r.Acquire(ctx)
	if el := time.Since(start); !errors.Is(err, rlock.ErrOwnerDead) || el > time.Second {
		t.Fatalf("Acquire after the owner died = %v after %v", err, el)
	}
	if r.Level() != 1 || !r.State().Inconsistent {
		t.Fatalf("level %d, state %+v", r.Level(), r.State())
	}
	r.Acquire(context.Background()) // recursion works in the owner-dead state
	if err := r.Consistent(); err != nil {
		t.Fatal(err)
	}
	r.Release()
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire after Consistent = %v, %v", ok, err)
	}
	r.Release()
}

// TestOwnerDeathNotRecoverable: the next acquirer is another child, which
// releases without Consistent: every later acquire gets ErrNotRecoverable.
func TestOwnerDeathNotRecoverable(t *testing.T) {
	r, _, path := newRLock(t)
	killed := proctest.Start(t, "killed", path, "3")
	if got := killed.Line(10 * time.Second); got != "held 3" {
		t.Fatalf("child: %q", got)
	}
	next := proctest.Start(t, "next", path)
	time.Sleep(50 * time.Millisecond)
	killed.Kill()
	if got := next.Line(10 * time.Second); got != "ownerdead 1 true" {
		t.Fatalf("next: %q", got)
	}
	if got := next.Line(10 * time.Second); got != "release nil" {
		t.Fatalf("next: %q", got)
	}
	next.WaitOK()
	if ok, err := r.TryAcquire(); ok || !errors.Is(err, rlock.ErrNotRecoverable) {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	if err := r.Acquire(context.Background()); !errors.Is(err, rlock.ErrNotRecoverable) {
		t.Fatalf("Acquire = %v", err)
	}
	if ok, err := r.AcquireTimeout(time.Second); ok || !errors.Is(err, rlock.ErrNotRecoverable) {
		t.Fatalf("AcquireTimeout = %v, %v", ok, err)
	}
	if !r.State().NotRecoverable {
		t.Fatalf("State = %+v", r.State())
	}
}

// TestHammerProcesses: two processes of two goroutines each, and the
// parent's goroutines, increment a counter under the RLock taken twice.
func TestHammerProcesses(t *testing.T) {
	r, mem, path := newRLock(t)
	iters := 2000
	if testing.Short() {
		iters = 300
	}
	var cs []*proctest.Child
	for i := 0; i < 2; i++ {
		cs = append(cs, proctest.Start(t, "hammer", path, "2", fmt.Sprint(iters)))
	}
	if err := hammer(r, mem, 2, iters); err != nil {
		t.Fatal(err)
	}
	proctest.WaitAll(cs)
	if got, want := atomic.LoadUint64(word(mem, 2)), uint64(6*iters); got != want {
		t.Fatalf("counter = %d, want %d", got, want)
	}
}

func TestAttachCorrupt(t *testing.T) {
	mem, _ := sharedMem(t)
	if _, err := rlock.Attach(mem[:rlock.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Attach of zeroed memory = %v", err)
	}
	if _, err := rlock.Init(mem[:rlock.Size-1], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Init of short memory = %v", err)
	}
	if _, err := rlock.Init(mem[4:4+rlock.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Init of misaligned memory = %v", err)
	}
	if _, err := rlock.Init(mem[:rlock.Size], nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rlock.Attach(mem[:rlock.Size], nil); err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[0])), 0x3000_0001) // impossible flag bits
	if _, err := rlock.Attach(mem[:rlock.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Attach with a garbage lock word = %v", err)
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[0])), 0)
	mem[12] = 9 // version
	if _, err := rlock.Attach(mem[:rlock.Size], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Attach of another version = %v", err)
	}
}

func TestLocker(t *testing.T) {
	r, _, _ := newRLock(t)
	l := r.Locker()
	l.Lock()
	l.Lock()
	if r.Level() != 2 {
		t.Fatal(r.Level())
	}
	l.Unlock()
	l.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("Unlock of an unlocked RLock did not panic")
		}
	}()
	l.Unlock()
}

func BenchmarkRLockUncontended(b *testing.B) {
	mem := make([]uint64, rlock.Size/8)
	r, err := rlock.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), rlock.Size), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Acquire(context.Background())
		r.Release()
	}
}

// BenchmarkRLockTryUncontended is TryAcquire+Release on a free RLock: the
// same fast path as Acquire.
func BenchmarkRLockTryUncontended(b *testing.B) {
	mem := make([]uint64, rlock.Size/8)
	r, err := rlock.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), rlock.Size), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := r.TryAcquire(); !ok || err != nil {
			b.Fatal(ok, err)
		}
		r.Release()
	}
}

func BenchmarkRLockRecursive(b *testing.B) {
	mem := make([]uint64, rlock.Size/8)
	r, _ := rlock.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), rlock.Size), nil)
	r.Acquire(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		r.Acquire(context.Background())
		r.Release()
	}
}

// BenchmarkLockUncontended is lock.Lock's fast path, measured beside the
// RLock's for comparison.
func BenchmarkLockUncontended(b *testing.B) {
	mem := make([]uint64, lock.Size/8)
	l, err := lock.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), lock.Size), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Acquire(context.Background())
		l.Release()
	}
}
