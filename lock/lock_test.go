//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

func TestMain(m *testing.M) {
	proctest.Register("counter", roleCounter)
	proctest.Register("bank", roleBank)
	proctest.Register("holder", roleHolder)
	proctest.Register("cancel", roleCancel)
	proctest.Register("releaser", roleReleaser)
	proctest.Register("contend", roleContend)
	proctest.Register("seg-try", roleSegTry)
	proctest.Register("stats-release", roleStatsRelease)
	proctest.Main(m)
}

// The tests share one layout in a plain mapped file: the Lock at 0, an int64
// it guards at 64.
const memSize = 4096

func mapFile(path string) ([]byte, error) { return proctest.MapFile(path) }

// newShared creates a mapped file holding an initialized Lock.
func newShared(tb testing.TB, opts *lock.Options) (string, []byte, *lock.Lock) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, memSize)
	o := lock.Options{}
	if opts != nil {
		o = *opts
	}
	o.Registry = regtest.Registry(tb, path)
	l, err := lock.Init(mem[:lock.Size], &o)
	if err != nil {
		tb.Fatal(err)
	}
	return path, mem, l
}

func attach(path string) ([]byte, *lock.Lock, error) {
	mem, err := mapFile(path)
	if err != nil {
		return nil, nil, err
	}
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, nil, err
	}
	l, err := lock.Attach(mem[:lock.Size], &lock.Options{CheckInterval: 50 * time.Millisecond, Registry: reg})
	return mem, l, err
}

func counter(mem []byte) *int64 { return (*int64)(unsafe.Pointer(&mem[64])) }

// startWord releases workers that wait to start together.
func startWord(mem []byte) *uint32 { return (*uint32)(unsafe.Pointer(&mem[128])) }

// roleCounter adds 1 under the lock n times with a non-atomic read-modify-write.
func roleCounter(args []string) error {
	mem, l, err := attach(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	c := counter(mem)
	proctest.SignalReady()
	for atomic.LoadUint32(startWord(mem)) == 0 {
		runtime.Gosched()
	}
	for i := 0; i < n; i++ {
		if err := l.Acquire(context.Background()); err != nil {
			return err
		}
		v := *c // deliberately not atomic: only the lock protects it
		*c = v + 1
		if err := l.Release(); err != nil {
			return err
		}
	}
	return nil
}

func TestTwoProcessesCountExactly(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	path, mem, _ := newShared(t, nil)
	a := proctest.Start(t, "counter", path, strconv.Itoa(n))
	b := proctest.Start(t, "counter", path, strconv.Itoa(n))
	a.Expect(proctest.Ready, 0)
	b.Expect(proctest.Ready, 0)
	atomic.StoreUint32(startWord(mem), 1) // both loops start together and contend
	a.WaitOK()
	b.WaitOK()
	if got := atomic.LoadInt64(counter(mem)); got != int64(2*n) {
		t.Fatalf("count = %d, want %d", got, 2*n)
	}
}

// roleBank deposits (+) or withdraws (-) 1 unit n times, each as a
// read, a pause and a write under the lock: the classic tutorial race.
func roleBank(args []string) error {
	mem, l, err := attach(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	delta := int64(1)
	if args[2] == "withdraw" {
		delta = -1
	}
	bal := counter(mem)
	for i := 0; i < n; i++ {
		if err := l.Acquire(context.Background()); err != nil {
			return err
		}
		v := *bal
		if i%64 == 0 {
			time.Sleep(time.Microsecond) // widen the window a lost update would need
		}
		*bal = v + delta
		l.Release()
	}
	return nil
}

func TestBankBalance(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	path, mem, _ := newShared(t, nil)
	atomic.StoreInt64(counter(mem), 100)
	d := proctest.Start(t, "bank", path, strconv.Itoa(n), "deposit")
	w := proctest.Start(t, "bank", path, strconv.Itoa(n), "withdraw")
	d.WaitOK()
	w.WaitOK()
	if got := atomic.LoadInt64(counter(mem)); got != 100 {
		t.Fatalf("balance = %d, want 100", got)
	}
}

// roleHolder takes the lock, says so, and waits to be killed.
func roleHolder(args []string) error {
	_, l, err := attach(args[0])
	if err != nil {
		return err
	}
	if err := l.Acquire(context.Background()); err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Hour)
	return nil
}

func TestOwnerDeathThenConsistent(t *testing.T) {
	path, mem, l := newShared(t, &lock.Options{CheckInterval: 50 * time.Millisecond})
	h := proctest.Start(t, "holder", path)
	h.Expect(proctest.Ready, 0)
	if st := l.State(); !st.Held || st.HolderPid != h.Pid() || !st.HolderAlive {
		t.Fatalf("state before kill: %+v (holder pid %d)", st, h.Pid())
	}
	// A waiter that is already asleep when the holder dies.
	got := make(chan error, 1)
	var took time.Duration
	go func() {
		ok, err := l.AcquireTimeout(10 * time.Second)
		if !ok && err == nil {
			err = errors.New("timed out")
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	h.Kill()
	killed := time.Now()
	err := <-got
	took = time.Since(killed)
	if !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("acquire after holder death: %v, want ErrOwnerDead", err)
	}
	if took > time.Second {
		t.Fatalf("took %v to detect the dead holder, want < 1s", took)
	}
	st := l.State()
	if !st.Held || !st.Inconsistent || st.HolderPid != os.Getpid() {
		t.Fatalf("state after takeover: %+v", st)
	}
	// Repair, mark consistent, and the lock works normally.
	atomic.StoreInt64(counter(mem), 0)
	if err := l.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if ok, err := l.TryAcquire(); !ok || err != nil {
			t.Fatalf("TryAcquire after recovery: %v %v", ok, err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("dead holder detected after %v", took)
}

// A TryAcquire that finds a live holder asks the registry again only
// after the check interval: a handle with an hour's interval keeps
// reporting the lock held after the holder died, one with 1 ms takes it
// over at its next try after that.
func TestTryAcquireChecksLiveHolderOncePerInterval(t *testing.T) {
	path, mem, slow := newShared(t, &lock.Options{CheckInterval: time.Hour})
	fast, err := lock.Attach(mem[:lock.Size], &lock.Options{CheckInterval: time.Millisecond, Registry: regtest.Registry(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	h := proctest.Start(t, "holder", path)
	h.Expect(proctest.Ready, 0)
	for _, l := range []*lock.Lock{slow, fast} {
		if ok, err := l.TryAcquire(); ok || err != nil {
			t.Fatalf("TryAcquire of a live holder's lock: %v %v", ok, err)
		}
	}
	h.Kill()
	<-h.Done()
	if ok, err := slow.TryAcquire(); ok || err != nil {
		t.Fatalf("TryAcquire within the check interval of finding the holder alive: %v %v, want false, nil", ok, err)
	}
	time.Sleep(10 * time.Millisecond)
	if ok, err := fast.TryAcquire(); !ok || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("TryAcquire after the check interval: %v %v, want ErrOwnerDead", ok, err)
	}
}

func TestOwnerDeathWithoutConsistentIsNotRecoverable(t *testing.T) {
	path, _, l := newShared(t, &lock.Options{CheckInterval: 50 * time.Millisecond})
	h := proctest.Start(t, "holder", path)
	h.Expect(proctest.Ready, 0)
	h.Kill()
	<-h.Done() // reaped: the pid is gone
	// TryAcquire notices the dead holder at once.
	ok, err := l.TryAcquire()
	if !ok || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("TryAcquire on a dead holder's lock: %v %v", ok, err)
	}
	if err := l.Release(); err != nil { // no Consistent
		t.Fatal(err)
	}
	if ok, err := l.TryAcquire(); ok || !errors.Is(err, lock.ErrNotRecoverable) {
		t.Fatalf("TryAcquire: %v %v, want ErrNotRecoverable", ok, err)
	}
	if err := l.Acquire(context.Background()); !errors.Is(err, lock.ErrNotRecoverable) {
		t.Fatalf("Acquire: %v, want ErrNotRecoverable", err)
	}
	if ok, err := l.AcquireTimeout(time.Second); ok || !errors.Is(err, lock.ErrNotRecoverable) {
		t.Fatalf("AcquireTimeout: %v %v, want ErrNotRecoverable", ok, err)
	}
	// And in another process too.
	_, l2, err := attach(path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l2.TryAcquire(); ok || !errors.Is(err, lock.ErrNotRecoverable) {
		t.Fatalf("second handle: %v %v", ok, err)
	}
}

// A holder named by a registry slot that no live process holds under that
// generation must count as dead (the registry's own tests cover a slot
// claimed again since).
func TestDeadRegistrySlotCountsAsDead(t *testing.T) {
	_, mem, l := newShared(t, &lock.Options{CheckInterval: 50 * time.Millisecond})
	gone := proc.ID{Slot: 200, Gen: 7}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[0])), gone.Pack())
	if st := l.State(); !st.Held || st.HolderAlive || st.HolderSlot != 200 {
		t.Fatalf("forged holder: %+v", st)
	}
	start := time.Now()
	ok, err := l.AcquireTimeout(5 * time.Second)
	if !ok || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("AcquireTimeout: %v %v, want ErrOwnerDead", ok, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v", el)
	}
}

// A genuinely live holder in another process is never stolen.
func TestLiveHolderIsNotStolen(t *testing.T) {
	path, _, l := newShared(t, &lock.Options{CheckInterval: 20 * time.Millisecond})
	h := proctest.Start(t, "holder", path)
	h.Expect(proctest.Ready, 0)
	ok, err := l.AcquireTimeout(300 * time.Millisecond)
	if ok || err != nil {
		t.Fatalf("AcquireTimeout on a live holder: %v %v", ok, err)
	}
	if ok, err := l.TryAcquire(); ok || err != nil {
		t.Fatalf("TryAcquire on a live holder: %v %v", ok, err)
	}
}

// roleCancel waits on the held lock with a context it cancels after a
// while, and prints how long Acquire took to return after the cancel.
func roleCancel(args []string) error {
	_, l, err := attach(args[0])
	if err != nil {
		return err
	}
	for i := 0; i < 7; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var at atomic.Int64
		go func() {
			time.Sleep(30 * time.Millisecond)
			at.Store(time.Now().UnixNano())
			cancel()
		}()
		err := l.Acquire(ctx)
		lat := time.Now().UnixNano() - at.Load()
		if !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Acquire: %v, want context.Canceled", err)
		}
		fmt.Println(lat)
	}
	return nil
}

func TestContextCancelReturnsPromptly(t *testing.T) {
	path, _, l := newShared(t, nil)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "cancel", path)
	out := c.WaitOK()
	var lats []time.Duration
	for _, f := range strings.Fields(out) {
		n, _ := strconv.ParseInt(f, 10, 64)
		lats = append(lats, time.Duration(n))
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) != 7 || lats[3] > 10*time.Millisecond {
		t.Fatalf("cancel latencies %v: median must be < 10ms", lats)
	}
	// The lock is as it was: held by us, and releasable.
	if st := l.State(); !st.Held || st.HolderPid != os.Getpid() {
		t.Fatalf("state after cancelled waits: %+v", st)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cancel latencies: %v", lats)
}

// roleReleaser releases a lock another process holds (Python allows it).
func roleReleaser(args []string) error {
	_, l, err := attach(args[0])
	if err != nil {
		return err
	}
	return l.Release()
}

func TestReleaseFromAnotherProcess(t *testing.T) {
	path, _, l := newShared(t, nil)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	proctest.Start(t, "releaser", path).WaitOK()
	if l.Held() {
		t.Fatal("still held after another process released it")
	}
	// Releasing it again, from there, is the misuse error.
	r := proctest.Start(t, "releaser", path).Wait(0)
	if r.Code != 1 || !strings.Contains(r.Stderr, lock.ErrNotLocked.Error()) {
		t.Fatalf("second release: code %d stderr %q", r.Code, r.Stderr)
	}
}

func TestMisuse(t *testing.T) {
	_, _, l := newShared(t, nil)
	if err := l.Release(); !errors.Is(err, lock.ErrNotLocked) {
		t.Fatalf("Release of unlocked: %v", err)
	}
	if err := l.Consistent(); !errors.Is(err, lock.ErrNotInconsistent) {
		t.Fatalf("Consistent of unlocked: %v", err)
	}
	l.Acquire(context.Background())
	if err := l.Consistent(); !errors.Is(err, lock.ErrNotInconsistent) {
		t.Fatalf("Consistent of healthy lock: %v", err)
	}
	if ok, err := l.TryAcquire(); ok || err != nil {
		t.Fatalf("TryAcquire of held lock: %v %v (non-recursive)", ok, err)
	}
	for _, d := range []time.Duration{0, -time.Second, 20 * time.Millisecond} {
		start := time.Now()
		if ok, err := l.AcquireTimeout(d); ok || err != nil {
			t.Fatalf("AcquireTimeout(%v) of held lock: %v %v", d, ok, err)
		}
		if el := time.Since(start); el < d || el > max(d, 0)+time.Second {
			t.Fatalf("AcquireTimeout(%v) took %v", d, el)
		}
	}
	l.Release()
}

func TestAttachRefusesGarbage(t *testing.T) {
	if _, err := lock.Attach(make([]byte, 8), nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("short memory: %v", err)
	}
	mem := make([]byte, lock.Size)
	if _, err := lock.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("uninitialized memory: %v", err)
	}
	if _, err := lock.Init(mem, nil); err != nil {
		t.Fatal(err)
	}
	*(*uint64)(unsafe.Pointer(&mem[0])) = 0xdeadbeefdeadbeef
	if _, err := lock.Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("garbage lock word: %v", err)
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

// 1,000 goroutines blocked on one held Lock hold few OS threads, and all
// acquire once it is released.
func TestThousandWaitersFewThreads(t *testing.T) {
	path, mem, _ := newShared(t, nil)
	h := proctest.Start(t, "holder", path)
	h.Expect(proctest.Ready, 0)
	_, l, err := attach(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var wg sync.WaitGroup
	var acquired atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Acquire(context.Background())
			if err != nil && !errors.Is(err, lock.ErrOwnerDead) {
				t.Error(err)
				return
			}
			if errors.Is(err, lock.ErrOwnerDead) {
				l.Consistent()
			}
			*counter(mem)++
			acquired.Add(1)
			l.Release()
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if th := threads(t); th >= 50 {
		t.Errorf("%d goroutines blocked on one Lock: %d threads, want < 50", n, th)
	} else {
		t.Logf("%d blocked goroutines, %d threads", n, th)
	}
	if acquired.Load() != 0 {
		t.Fatalf("%d acquired a held lock", acquired.Load())
	}
	h.Kill() // the holder dies: one waiter gets ErrOwnerDead, repairs, and all proceed
	wg.Wait()
	if acquired.Load() != n || *counter(mem) != n {
		t.Fatalf("acquired %d, counter %d, want %d", acquired.Load(), *counter(mem), n)
	}
}

func TestLockerAdapter(t *testing.T) {
	_, mem, l := newShared(t, nil)
	var mu sync.Locker = l.Locker()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				*counter(mem)++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if *counter(mem) != 4000 {
		t.Fatalf("counter %d", *counter(mem))
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "lock: ") {
			t.Fatalf("Unlock of unlocked Locker: recovered %v", r)
		}
	}()
	mu.Unlock()
}

// roleContend is the W2 worker: n increments under the lock, started when
// the parent releases the start word.
func roleContend(args []string) error {
	mem, l, err := attach(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	for atomic.LoadUint32(startWord(mem)) == 0 {
		runtime.Gosched()
	}
	c := counter(mem)
	for i := 0; i < n; i++ {
		l.Acquire(context.Background())
		*c++
		l.Release()
	}
	return nil
}

func TestCreateOpenInSegment(t *testing.T) {
	seg, name := regtest.Segment(t)
	l, err := lock.Create(seg, "mu", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Create(seg, "mu", nil); !errors.Is(err, shm.ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	if _, err := lock.Open(seg, "nope", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Open of a missing name: %v", err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "bytes", Kind: shm.KindBytes, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Open(seg, "bytes", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("Open of another kind: %v", err)
	}
	// Another process opens it by name and contends with us.
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "seg-try", name)
	if out := strings.TrimSpace(c.WaitOK()); out != "busy" {
		t.Fatalf("child saw %q while we held the lock", out)
	}
	l.Release()
	if out := strings.TrimSpace(proctest.Start(t, "seg-try", name).WaitOK()); out != "acquired" {
		t.Fatalf("child saw %q after release", out)
	}
}

// roleSegTry opens the lock by name and tries it once.
func roleSegTry(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	l, err := lock.Open(seg, "mu", nil)
	if err != nil {
		return err
	}
	ok, err := l.TryAcquire()
	if err != nil {
		return err
	}
	if ok {
		fmt.Println("acquired")
		return l.Release()
	}
	fmt.Println("busy")
	return nil
}

// Locker never hides an owner's death: without a repair function it makes
// the lock not recoverable and panics; LockerRepair repairs and goes on,
// or, when the repair fails, makes it not recoverable and panics.
func TestLockerOnDeadOwner(t *testing.T) {
	dead := proc.ID{Slot: 200, Gen: 7} // a registry slot nobody holds
	forge := func(t *testing.T) ([]byte, *lock.Lock) {
		_, mem, l := newShared(t, &lock.Options{CheckInterval: 10 * time.Millisecond})
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[0])), dead.Pack())
		return mem, l
	}
	mustPanic := func(t *testing.T, f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "not repaired") {
				t.Fatalf("recovered %v, want a panic saying the state was not repaired", r)
			}
		}()
		f()
	}
	t.Run("no repair", func(t *testing.T) {
		_, l := forge(t)
		mustPanic(t, l.Locker().Lock)
		if _, err := l.TryAcquire(); !errors.Is(err, lock.ErrNotRecoverable) {
			t.Fatalf("after the panic: %v, want ErrNotRecoverable", err)
		}
	})
	t.Run("repaired", func(t *testing.T) {
		_, l := forge(t)
		repaired := false
		mu := l.LockerRepair(func() error { repaired = true; return nil })
		mu.Lock() // repairs the forged lock
		//lint:ignore SA2001 taking the lock is the test: Lock runs the repair
		mu.Unlock()
		if ok, err := l.TryAcquire(); !repaired || !ok || err != nil {
			t.Fatalf("repaired %v; TryAcquire after: %v %v", repaired, ok, err)
		}
		l.Release()
	})
	t.Run("repair fails", func(t *testing.T) {
		_, l := forge(t)
		mustPanic(t, l.LockerRepair(func() error { return errors.New("cannot") }).Lock)
		if _, err := l.TryAcquire(); !errors.Is(err, lock.ErrNotRecoverable) {
			t.Fatalf("after the panic: %v, want ErrNotRecoverable", err)
		}
	})
}
