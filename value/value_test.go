//go:build linux

package value

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// anon returns n bytes of 64-byte aligned anonymous shared memory.
func anon(tb testing.TB, n int) []byte {
	tb.Helper()
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

func newValue[T any](tb testing.TB, initial T, opts *Options) *Value[T] {
	tb.Helper()
	n, err := SizeOf[T]()
	if err != nil {
		tb.Fatal(err)
	}
	v, err := Init(anon(tb, n), initial, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

type point struct {
	X, Y float64
	N    int32
	OK   bool
}

type pointOther struct { // same size as point, other fields
	X, Y float64
	N    float32
	OK   bool
}

type padded struct {
	A int8
	B int32
}

func TestSizeOf(t *testing.T) {
	for _, c := range []struct {
		got  func() (int, error)
		want int
	}{
		{SizeOf[int8], 192}, {SizeOf[int64], 192}, {SizeOf[[2]float32], 192},
		{SizeOf[complex128], 256}, {SizeOf[wide64], 256}, {SizeOf[[65]byte], 128 + 2*128},
	} {
		if n, err := c.got(); err != nil || n != c.want {
			t.Errorf("SizeOf = %d, %v; want %d", n, err, c.want)
		}
	}
}

func testOps[T comparable](t *testing.T, a, b, c T) {
	t.Run(strings.ReplaceAll(typeName[T](), " ", ""), func(t *testing.T) {
		v := newValue(t, a, nil)
		if got := v.Load(); got != a {
			t.Fatalf("Load after Init = %v, want %v", got, a)
		}
		v.Store(b)
		if got := v.Load(); got != b {
			t.Fatalf("Load after Store = %v, want %v", got, b)
		}
		if old := v.Swap(c); old != b {
			t.Fatalf("Swap returned %v, want %v", old, b)
		}
		if v.CompareAndSwap(a, b) {
			t.Fatal("CompareAndSwap with a stale old value succeeded")
		}
		if !v.CompareAndSwap(c, a) || v.Load() != a {
			t.Fatalf("CompareAndSwap(%v, %v) failed; value %v", c, a, v.Load())
		}
		got, err := v.Update(func(p *T) { *p = c })
		if err != nil || got != c || v.Load() != c {
			t.Fatalf("Update = %v, %v; Load %v; want %v", got, err, v.Load(), c)
		}
		r, err := AttachRaw[T](v.c.mem, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Load() != c {
			t.Fatalf("RawValue sees %v, want %v", r.Load(), c)
		}
		r.Store(a)
		if v.Load() != a || r.Update(func(p *T) { *p = b }) != b || v.Load() != b {
			t.Fatal("RawValue writes not seen by the Value")
		}
	})
}

func typeName[T any]() string {
	i, _ := typeinfo.Of[T]()
	return i.Desc
}

func TestOps(t *testing.T) {
	testOps[int8](t, -1, 2, 3)
	testOps[uint16](t, 1, 0xffff, 3)
	testOps[int32](t, -5, 1<<30, 7)
	testOps[int64](t, -5, 1<<60, 7)
	testOps[float32](t, 1.5, -2.5, 3)
	testOps[float64](t, 3.1415927, -1e300, 0)
	testOps[bool](t, true, false, false)
	testOps[complex64](t, 1+2i, 3, -4i)
	testOps[complex128](t, 1+2i, 3, -4i)
	testOps[[3]byte](t, [3]byte{1, 2, 3}, [3]byte{4}, [3]byte{0, 0, 9})
	testOps[[7]int8](t, [7]int8{1}, [7]int8{6: 1}, [7]int8{3: -1})
	testOps[padded](t, padded{1, 2}, padded{-1, -2}, padded{3, 0})
	testOps[point](t, point{1, 2, 3, true}, point{X: -1}, point{N: 9})
	testOps[wide64](t, pattern(1), pattern(2), pattern(3))
	testOps[[9]byte](t, [9]byte{1}, [9]byte{8: 1}, [9]byte{4: 4})
}

// TestCompareAndSwapPadding: padding bytes never make CompareAndSwap fail.
func TestCompareAndSwapPadding(t *testing.T) {
	v := newValue(t, padded{1, 2}, nil)
	var old padded
	b := (*[8]byte)(unsafe.Pointer(&old))
	for i := range b {
		b[i] = 0xaa // garbage in the padding bytes 1..3
	}
	old.A, old.B = 1, 2
	if !v.CompareAndSwap(old, padded{5, 6}) {
		t.Fatal("CompareAndSwap failed because of padding bytes")
	}
	type widePad struct {
		A int8
		B [3]int64
	}
	w := newValue(t, widePad{A: 1}, nil)
	var wo widePad
	wb := (*[32]byte)(unsafe.Pointer(&wo))
	for i := range wb {
		wb[i] = 0x55
	}
	wo.A, wo.B = 1, [3]int64{}
	if !w.CompareAndSwap(wo, widePad{A: 2}) || w.Load().A != 2 {
		t.Fatal("wide CompareAndSwap failed because of padding bytes")
	}
}

func TestAdd(t *testing.T) {
	i64 := newValue[int64](t, 10, nil)
	if got := i64.Add(5); got != 15 {
		t.Errorf("Add = %d", got)
	}
	u32 := newValue[uint32](t, 1, nil)
	if got := u32.Add(^uint32(0)); got != 0 { // wraps
		t.Errorf("uint32 Add(-1) = %d", got)
	}
	type Count int32
	c := newValue[Count](t, 1, nil)
	if got := c.Add(-3); got != -2 {
		t.Errorf("Count Add = %d", got)
	}
	i8 := newValue[int8](t, 127, nil)
	if got := i8.Add(1); got != -128 {
		t.Errorf("int8 Add = %d", got)
	}
	f := newValue(t, 1.5, nil)
	if got := f.Add(0.25); got != 1.75 {
		t.Errorf("float64 Add = %v", got)
	}
	z := newValue[complex128](t, 1+1i, nil)
	if got := z.Add(2i); got != 1+3i {
		t.Errorf("complex128 Add = %v", got)
	}
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.HasPrefix(s, "value: Add on non-numeric type") {
			t.Errorf("Add on a struct: recovered %v", r)
		}
	}()
	newValue(t, point{}, nil).Add(point{})
}

func TestRefusedType(t *testing.T) {
	mem := anon(t, 4096)
	errs := map[string]error{}
	_, errs["string"] = Init(mem, "x", nil)
	_, errs["pointer"] = Init[*int](mem, nil, nil)
	_, errs["slice"] = InitRaw[[]byte](mem, nil, nil)
	_, errs["map attach"] = Attach[map[int]int](mem, nil)
	_, errs["struct with func"] = Init(mem, struct {
		A int
		F func()
	}{}, nil)
	_, errs["sizeof chan"] = SizeOf[chan int]()
	_, errs["create iface"] = Create[any](nil, "x", nil, nil)
	_, errs["open uintptr"] = Open[uintptr](nil, "x", nil)
	for name, err := range errs {
		if !errors.Is(err, typeinfo.ErrUnsupportedType) {
			t.Errorf("%s: err = %v, want ErrUnsupportedType", name, err)
		}
	}
	if atomic.LoadUint32(word32(mem, offMagic)) != 0 {
		t.Error("a refused Init wrote to memory")
	}
}

func TestTypeMismatch(t *testing.T) {
	v := newValue(t, point{X: 1}, nil)
	mem := v.c.mem
	if unsafe.Sizeof(point{}) != unsafe.Sizeof(pointOther{}) {
		t.Fatal("test types should have the same size")
	}
	_, e1 := Attach[pointOther](mem, nil)
	_, e2 := AttachRaw[[24]byte](mem, nil)
	_, e3 := Attach[int64](mem, nil)
	w := newValue[float64](t, 1, nil)
	_, e4 := Attach[int64](w.c.mem, nil) // same size and alignment, other kind
	_, e5 := Attach[uint64](newValue[int64](t, 1, nil).c.mem, nil)
	for i, err := range []error{e1, e2, e3, e4, e5} {
		if !errors.Is(err, shm.ErrTypeMismatch) {
			t.Errorf("case %d: err = %v, want ErrTypeMismatch", i+1, err)
		}
	}
	type renamed struct {
		A, B float64
		C    int32
		D    bool
	}
	if r, err := Attach[renamed](mem, nil); err != nil || r.Load().A != 1 {
		t.Errorf("same layout under other names: %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	n, _ := SizeOf[int64]()
	mem := anon(t, n)
	if _, err := Attach[int64](mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("zeroed memory: %v", err)
	}
	if _, err := Init[int64](mem[:100], 0, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("short memory: %v", err)
	}
	if _, err := Init[int64](mem[1:], 0, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("misaligned memory: %v", err)
	}
	wn, _ := SizeOf[wide64]()
	wmem := anon(t, wn)
	if _, err := Init[wide64](wmem[:wn-1], wide64{}, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("memory one byte short: %v", err)
	}
	if _, err := Init[wide64](wmem, wide64{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach[wide64](wmem[:wn-8], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("truncated attach: %v", err)
	}
	for _, c := range []struct {
		name string
		off  int
		val  uint32
	}{{"version", offVersion, 99}, {"flags", offFlags, 6}, {"writer word", offWriter + 4, 0}} {
		m := anon(t, wn)
		if _, err := Init[wide64](m, wide64{}, nil); err != nil {
			t.Fatal(err)
		}
		if c.name == "writer word" {
			atomic.StoreUint64(word64(m, offWriter), 1<<25|5) // a bit no lock word has
		} else {
			atomic.StoreUint32(word32(m, c.off), c.val)
		}
		if _, err := Attach[wide64](m, nil); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("bad %s: %v", c.name, err)
		}
	}
}

func TestNoLock(t *testing.T) {
	n, _ := SizeOf[int64]()
	mem := anon(t, n)
	if _, err := InitRaw[int64](mem, 7, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach[int64](mem, nil); !errors.Is(err, ErrNoLock) {
		t.Fatalf("Value on a RawValue without a lock: %v", err)
	}
	l, err := lock.Init(anon(t, lock.Size), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Attach[int64](mem, &Options{Lock: l})
	if err != nil {
		t.Fatal(err)
	}
	if v.Lock() != l || v.State().OwnLock {
		t.Fatal("Lock() is not the shared lock")
	}
}

// TestUpdateWaitsForLock: Update waits while another holder has the lock
// (here a shared lock.Lock) and sees what that holder stored.
func TestUpdateWaitsForLock(t *testing.T) {
	l, err := lock.Init(anon(t, lock.Size), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := newValue[int64](t, 0, &Options{Lock: l})
	w := newValue[int64](t, 0, &Options{Lock: l})
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan int64)
	go func() {
		x, err := v.Update(func(p *int64) { *p = *p*10 + w.Load() })
		if err != nil {
			t.Error(err)
		}
		done <- x
	}()
	select {
	case <-done:
		t.Fatal("Update did not wait for the lock")
	case <-time.After(50 * time.Millisecond):
	}
	v.Store(1)
	w.Store(2)
	l.Release()
	if x := <-done; x != 12 {
		t.Fatalf("Update saw %d, want 12", x)
	}
	// UpdateContext gives up when the context ends.
	l.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := v.UpdateContext(ctx, func(p *int64) { *p = -1 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("UpdateContext: %v", err)
	}
	l.Release()
	if v.Load() != 12 {
		t.Fatal("a cancelled UpdateContext changed the value")
	}
}

// TestWideConcurrent: goroutines writing and reading a wide value in one
// process never see a mix (run under -race: the copies are atomic).
func TestWideConcurrent(t *testing.T) {
	v := newValue(t, pattern(1), nil)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); !stop.Load(); i++ {
				switch i % 3 {
				case 0:
					v.Store(pattern(i))
				case 1:
					v.Swap(pattern(uint64(g)))
				default:
					v.Update(func(p *wide64) { *p = pattern(p.W[0] + 1) })
				}
			}
		}()
	}
	n := 200000
	if testing.Short() {
		n = 20000
	}
	for range n {
		if x := v.Load(); !x.uniform() {
			stop.Store(true)
			t.Fatalf("torn read %v", x.W)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestNoAllocs(t *testing.T) {
	i := newValue[int64](t, 0, nil)
	w := newValue(t, pattern(1), nil)
	r, _ := AttachRaw[int64](i.c.mem, nil)
	n := testing.AllocsPerRun(1000, func() {
		i.Store(i.Load() + 1)
		i.Add(1)
		i.Swap(3)
		i.CompareAndSwap(3, 4)
		r.Add(1)
		w.Store(w.Load())
		w.Swap(pattern(3))
		w.CompareAndSwap(pattern(3), pattern(4))
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

// TestProcAdders: Python's "two processes each add 1 100,000 times" ends
// exact, with Update (under the lock) and with Add.
func TestProcAdders(t *testing.T) {
	n := 100000
	modes := []string{"update", "add"}
	if os.Getenv("MPIPC_VALUE_RACY") != "" {
		modes = append(modes, "racy") // shows that the test can fail
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			mem, path := mapFile(t, 8192)
			v, err := Init[int64](mem, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			start, err := InitRaw[int32](mem[4096:], 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := proctest.Start(t, "adder", path, mode, strconv.Itoa(n))
			b := proctest.Start(t, "adder", path, mode, strconv.Itoa(n))
			a.Expect(proctest.Ready, 0)
			b.Expect(proctest.Ready, 0)
			start.Store(1)
			a.WaitOK()
			b.WaitOK()
			if got := v.Load(); got != int64(2*n) {
				t.Fatalf("after 2 × %d increments: %d", n, got)
			}
		})
	}
}

// TestProcTornReads: a writer process flips a 64-byte struct between two
// patterns as fast as it can; this process loads it millions of times and
// never sees a mix.
func TestProcTornReads(t *testing.T) {
	loads := 10_000_000
	if testing.Short() {
		loads = 1_000_000
	}
	size, _ := SizeOf[wide64]()
	mem, path := mapFile(t, 8192)
	v, err := Init(mem[:size], pattern(0x0101010101010101), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := InitRaw[int64](mem[4096:], 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "flipper", path)
	c.Expect(proctest.Ready, 0)
	var seen [2]int
	start := v.State().Writes
	for range loads {
		x := v.Load()
		switch {
		case x == pattern(0x0101010101010101):
			seen[0]++
		case x == pattern(0xfefefefefefefefe):
			seen[1]++
		default:
			stop.Store(1)
			t.Fatalf("torn read: %x", x.W)
		}
	}
	writes := v.State().Writes - start
	stop.Store(1)
	out := strings.TrimSpace(c.WaitOK())
	t.Logf("%d loads saw %v; %d writes meanwhile (writer made %s)", loads, seen, writes, out)
	if seen[0] == 0 || seen[1] == 0 || writes < 1000 {
		t.Fatalf("the writer was not writing during the loads: seen %v, %d writes", seen, writes)
	}
}

// TestProcWriterDiesMidWrite: a writer killed between taking the writer
// lock and publishing leaves the previous value readable at once, and the
// next writer takes the lock over within about CheckInterval.
func TestProcWriterDiesMidWrite(t *testing.T) {
	size, _ := SizeOf[wide64]()
	mem, path := mapFile(t, size)
	v, err := Init(mem, pattern(1), &Options{Registry: regtest.Registry(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "dieMidWrite", path)
	if r := c.Wait(0); r.Signal != 9 {
		t.Fatalf("child did not die by SIGKILL: %+v", r)
	}
	st := v.State()
	if !st.WriterHeld || st.WriterAlive || st.WriterPid != c.Pid() {
		t.Fatalf("state after the writer died: %+v", st)
	}
	t0 := time.Now()
	if x := v.Load(); x != pattern(1) {
		t.Fatalf("Load after a dead writer = %x, want the last published value", x.W)
	}
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("Load took %v with a dead writer holding the writer lock", d)
	}
	t0 = time.Now()
	v.Store(pattern(2))
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Store took %v to take over from the dead writer", d)
	}
	if x := v.Load(); x != pattern(2) {
		t.Fatalf("Load after takeover = %x", x.W)
	}
	if st := v.State(); st.WriterHeld || st.Writes != 1 {
		t.Fatalf("state after takeover: %+v", st)
	}
}

// TestProcLockHolderDies: Update takes over the own lock of a Value whose
// holder died, marks the lock consistent and the Value inconsistent,
// applies the update and reports ErrOwnerDead.
func TestProcLockHolderDies(t *testing.T) {
	size, _ := SizeOf[int64]()
	mem, path := mapFile(t, size)
	v, err := Init[int64](mem, 41, &Options{CheckInterval: 20 * time.Millisecond, Registry: regtest.Registry(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "dieHolding", path)
	if r := c.Wait(0); r.Signal != 9 {
		t.Fatalf("child did not die by SIGKILL: %+v", r)
	}
	if st := v.State(); !st.Lock.Held || st.Lock.HolderAlive {
		t.Fatalf("lock state: %+v", st.Lock)
	}
	x, err := v.Update(func(p *int64) { *p++ })
	if !errors.Is(err, ErrOwnerDead) || x != 42 {
		t.Fatalf("Update = %d, %v; want 42, ErrOwnerDead", x, err)
	}
	st := v.State()
	if st.Lock.Held || st.Lock.Inconsistent || st.Lock.NotRecoverable || !st.Inconsistent {
		t.Fatalf("state after Update: %+v, lock %+v", st, st.Lock)
	}
	if err := v.Consistent(); err != nil {
		t.Fatal(err)
	}
	if x, err := v.Update(func(p *int64) { *p++ }); err != nil || x != 43 {
		t.Fatalf("Update after Consistent = %d, %v", x, err)
	}
}
