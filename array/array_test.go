//go:build linux

package array

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

func anon(tb testing.TB, n int) []byte {
	tb.Helper()
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

func newArray[T any](tb testing.TB, n int, init []T, opts *Options) *Array[T] {
	tb.Helper()
	size, err := SizeOf[T](n)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := Init(anon(tb, size), n, init, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// wantPanic runs f and checks that it panics with a message containing want.
func wantPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), want) {
			t.Errorf("panic %v, want one containing %q", r, want)
		}
	}()
	f()
}

func TestLayout(t *testing.T) {
	for _, c := range []struct {
		got  func() (int, error)
		want int
	}{
		{func() (int, error) { return SizeOf[float64](0) }, 128},
		{func() (int, error) { return SizeOf[float64](1) }, 192},
		{func() (int, error) { return SizeOf[float64](8) }, 192},
		{func() (int, error) { return SizeOf[float64](9) }, 256},
		{func() (int, error) { return SizeOf[byte](65) }, 256},
	} {
		if n, err := c.got(); err != nil || n != c.want {
			t.Errorf("SizeOf = %d, %v; want %d", n, err, c.want)
		}
	}
	a := newArray(t, 3, []int32{7, 8, 9}, nil)
	mem := a.c.mem
	if got := unsafe.Pointer(&a.c.s[0]); got != unsafe.Pointer(&mem[headerSize]) {
		t.Error("elements do not start at offset 128")
	}
	le := func(off int) uint64 {
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(mem[off+i])
		}
		return v
	}
	info, _ := typeinfo.Of[int32]()
	if le(0)&0xffffffff != magic || le(0)>>32 != Version || le(8) != 3 || le(16) != 4 || le(24) != info.Fingerprint || mem[32] != flagOwn {
		t.Errorf("header bytes: %x", mem[:40])
	}
	if le(128) != 7|8<<32 || mem[136] != 9 {
		t.Errorf("element bytes: %x", mem[128:140])
	}
}

func TestOps(t *testing.T) {
	a := newArray(t, 10, []int32{0, 1, 2, 3, 4}, nil)
	if a.Len() != 10 || a.At(4) != 4 || a.At(5) != 0 {
		t.Fatalf("init: %v", a.Slice(0, 10))
	}
	a.Set(9, 99)
	if got := a.Slice(3, 10); !slices.Equal(got, []int32{3, 4, 0, 0, 0, 0, 99}) {
		t.Fatalf("Slice = %v", got)
	}
	if n := a.CopyIn([]int32{-1, -2, -3}, 8); n != 2 || a.At(8) != -1 || a.At(9) != -2 {
		t.Fatalf("CopyIn at the end copied %d: %v", n, a.Slice(0, 10))
	}
	dst := make([]int32, 4)
	if n := a.CopyOut(dst, 7); n != 3 || !slices.Equal(dst, []int32{0, -1, -2, 0}) {
		t.Fatalf("CopyOut = %d %v", n, dst)
	}
	if err := a.Update(0, 5, func(s []int32) {
		for i := range s {
			s[i] *= 10
		}
	}); err != nil {
		t.Fatal(err)
	}
	var all []int32
	for i, x := range a.All() {
		if i != len(all) {
			t.Fatalf("All yielded index %d at position %d", i, len(all))
		}
		all = append(all, x)
	}
	if !slices.Equal(all, []int32{0, 10, 20, 30, 40, 0, 0, 0, -1, -2}) {
		t.Fatalf("All = %v", all)
	}
	for i := range a.All() {
		if i == 2 {
			break
		}
	}
	if a.State().Lock.Held {
		t.Fatal("lock held after the operations")
	}
	r, err := AttachRaw[int32](a.c.mem)
	if err != nil {
		t.Fatal(err)
	}
	v := r.View()
	v[0] = 5
	if a.At(0) != 5 || r.At(0) != 5 || len(v) != 10 {
		t.Fatal("RawArray view is not the shared memory")
	}
	r.Set(1, 6)
	r.CopyIn([]int32{7}, 2)
	got := make([]int32, 3)
	r.CopyOut(got, 0)
	if !slices.Equal(got, []int32{5, 6, 7}) || !slices.Equal(r.Slice(0, 3), got) {
		t.Fatalf("RawArray ops: %v", got)
	}
	n := 0
	for i, x := range r.All() {
		if x != a.At(i) {
			t.Fatal("RawArray All differs")
		}
		n++
	}
	if n != 10 {
		t.Fatalf("RawArray All yielded %d", n)
	}
	// A long array iterates across chunks.
	long := newArray[uint16](t, 1000, nil, nil)
	long.Update(0, 1000, func(s []uint16) {
		for i := range s {
			s[i] = uint16(i)
		}
	})
	k := 0
	for i, x := range long.All() {
		if int(x) != i || i != k {
			t.Fatalf("All over chunks: [%d] = %d", i, x)
		}
		k++
	}
	if k != 1000 {
		t.Fatalf("All yielded %d", k)
	}
}

type rec struct {
	T int64
	V [3]float32
}

func TestStructElems(t *testing.T) {
	init := []rec{{1, [3]float32{1, 2, 3}}, {2, [3]float32{4}}}
	a := newArray(t, 3, init, nil)
	if a.At(1) != init[1] || a.At(2) != (rec{}) {
		t.Fatal(a.Slice(0, 3))
	}
	a.Set(2, rec{T: 3})
	if s := a.State(); s.Len != 3 || s.ElemSize != int(unsafe.Sizeof(rec{})) || !s.OwnLock || s.Lock.Held || s.Type != "struct{0:int64 8:[3]float32}" {
		t.Fatalf("State = %+v", s)
	}
}

func TestOutOfRange(t *testing.T) {
	a := newArray(t, 4, []int64{11, 22, 33, 44}, nil)
	wantPanic(t, "index out of range [4] with length 4", func() { a.At(4) })
	wantPanic(t, "index out of range [-1]", func() { a.Set(-1, 0) })
	wantPanic(t, "slice bounds out of range [5:4]", func() { a.CopyOut(nil, 5) })
	wantPanic(t, "slice bounds out of range [5:4]", func() { a.CopyIn([]int64{1}, 5) })
	wantPanic(t, "slice bounds out of range [:5] with capacity 4", func() { a.Slice(0, 5) })
	wantPanic(t, "slice bounds out of range [3:2]", func() { a.Slice(3, 2) })
	wantPanic(t, "slice bounds out of range [::9]", func() { a.Update(0, 9, func([]int64) {}) })
	// None of them left the lock held or changed anything.
	if a.State().Lock.Held || !slices.Equal(a.Slice(0, 4), []int64{11, 22, 33, 44}) {
		t.Fatal("a failed call changed the array")
	}
	r, _ := AttachRaw[int64](a.c.mem)
	wantPanic(t, "index out of range [4] with length 4", func() { r.At(4) })
	wantPanic(t, "index out of range [7] with length 4", func() { r.Set(7, 1) })
	wantPanic(t, "slice bounds out of range", func() { r.Slice(2, 6) })
	wantPanic(t, "array: Value needs a byte array", func() { a.Value() })
	wantPanic(t, "array: SetValue needs a byte array", func() { r.SetValue(nil) })
	// Update's fn panicking releases the lock.
	wantPanic(t, "boom", func() { a.Update(0, 1, func([]int64) { panic("boom") }) })
	if a.State().Lock.Held {
		t.Fatal("lock held after a panicking Update")
	}
}

func TestChars(t *testing.T) {
	a := newArray(t, 8, []byte("hi"), nil)
	if string(a.Value()) != "hi" || string(a.Raw()) != "hi\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("Value %q Raw %q", a.Value(), a.Raw())
	}
	if err := a.SetValue([]byte("hello")); err != nil || string(a.Value()) != "hello" {
		t.Fatalf("SetValue: %v, %q", err, a.Value())
	}
	if err := a.SetValue([]byte("abc")); err != nil || string(a.Value()) != "abc" || string(a.Raw()) != "abc\x00o\x00\x00\x00" {
		t.Fatalf("shorter SetValue: %q %q", a.Value(), a.Raw())
	}
	if err := a.SetValue([]byte("12345678")); err != nil || string(a.Value()) != "12345678" {
		t.Fatalf("full SetValue: %v %q", err, a.Value())
	}
	if err := a.SetValue([]byte("123456789")); !errors.Is(err, ErrTooLong) || string(a.Value()) != "12345678" {
		t.Fatalf("too long SetValue: %v %q", err, a.Value())
	}
	r, _ := AttachRaw[byte](a.c.mem)
	r.SetValue([]byte("raw"))
	if string(r.Value()) != "raw" || len(r.Raw()) != 8 {
		t.Fatal("RawArray chars")
	}
	s := newArray[int8](t, 4, []int8{'o', 'k'}, nil)
	if string(s.Value()) != "ok" {
		t.Fatal("int8 chars")
	}
}

func TestErrors(t *testing.T) {
	mem := anon(t, 4096)
	errs := map[string]error{}
	_, errs["string"] = Init[string](mem, 1, nil, nil)
	_, errs["pointer"] = InitRaw[*int](mem, 1, nil)
	_, errs["attach slice"] = Attach[[]int](mem, nil)
	_, errs["sizeof map"] = SizeOf[map[int]int](1)
	_, errs["create iface"] = Create[any](nil, "x", 1, nil, nil)
	_, errs["open func"] = OpenRaw[func()](nil, "x")
	for name, err := range errs {
		if !errors.Is(err, typeinfo.ErrUnsupportedType) {
			t.Errorf("%s: %v, want ErrUnsupportedType", name, err)
		}
	}
	if _, err := Init[int32](mem, 2, []int32{1, 2, 3}, nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("long initializer: %v", err)
	}
	if _, err := Init[int32](mem, -1, nil, nil); !errors.Is(err, ErrLength) {
		t.Errorf("negative length: %v", err)
	}
	if _, err := SizeOf[[1 << 20]byte](math.MaxInt / 2); !errors.Is(err, ErrLength) {
		t.Errorf("overflowing length: %v", err)
	}
	if _, err := Init[int32](mem, 1000, nil, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("memory too small: %v", err)
	}
	if _, err := Init[int32](mem[4:], 1, nil, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("misaligned: %v", err)
	}
	if _, err := Attach[int32](anon(t, 4096), nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("zeroed memory: %v", err)
	}
	if atomic := mem[0]; atomic != 0 {
		t.Error("a refused Init wrote to memory")
	}
}

type point struct {
	X, Y float64
	N    int32
	OK   bool
}

type pointOther struct {
	X, Y float64
	N    float32
	OK   bool
}

func TestTypeMismatch(t *testing.T) {
	a := newArray(t, 4, []point{{X: 1}}, nil)
	_, e1 := Attach[pointOther](a.c.mem, nil) // same size, other fields
	_, e2 := AttachRaw[[24]byte](a.c.mem)
	_, e3 := Attach[float64](newArray[int64](t, 2, nil, nil).c.mem, nil)
	_, e4 := Attach[int32](newArray[int64](t, 2, nil, nil).c.mem, nil)
	for i, err := range []error{e1, e2, e3, e4} {
		if !errors.Is(err, shm.ErrTypeMismatch) {
			t.Errorf("case %d: %v, want ErrTypeMismatch", i+1, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	setup := func() []byte {
		a := newArray[int64](t, 4, nil, nil)
		return a.c.mem
	}
	for name, bad := range map[string]func(m []byte){
		"version":  func(m []byte) { *w32(m, offVersion) = 7 },
		"length":   func(m []byte) { *w64(m, offLen) = 9 },
		"huge len": func(m []byte) { *w64(m, offLen) = 1 << 62 },
		"flags":    func(m []byte) { *w32(m, offFlags) = 4 },
		"magic":    func(m []byte) { *w32(m, offMagic) = 1 },
	} {
		m := setup()
		bad(m)
		if _, err := AttachRaw[int64](m); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	m := setup()
	if _, err := AttachRaw[int64](m[:len(m)-8]); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("truncated: %v", err)
	}
}

func TestSharedLock(t *testing.T) {
	size, _ := SizeOf[int32](4)
	mem := anon(t, size)
	if _, err := InitRaw[int32](mem, 4, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach[int32](mem, nil); !errors.Is(err, ErrNoLock) {
		t.Fatalf("Array over a RawArray without a lock: %v", err)
	}
	// A Value and an Array sharing the Value's lock: an Update of the Array
	// waits while the lock is held for a compound change.
	vs, _ := value.SizeOf[int64]()
	v, err := value.Init[int64](anon(t, vs), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Attach[int32](mem, &Options{Lock: v.Lock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Lock().Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan int32)
	go func() {
		var seen int32
		a.Update(0, 1, func(s []int32) { seen = s[0] + int32(v.Load()) })
		done <- seen
	}()
	select {
	case <-done:
		t.Fatal("Update did not wait for the shared lock")
	case <-time.After(50 * time.Millisecond):
	}
	ra, _ := AttachRaw[int32](mem)
	ra.Set(0, 40)
	v.Store(2)
	v.Lock().Release()
	if got := <-done; got != 42 {
		t.Fatalf("Update saw %d, want 42", got)
	}
	if a.State().OwnLock {
		t.Fatal("State says own lock")
	}
}

// TestProcNegate is Python's documentation example across processes: a
// child sets a shared float to 3.1415927 and negates an int array holding
// range(10).
func TestProcNegate(t *testing.T) {
	mem, path := mapFile(t, 8192)
	num, err := value.Init(mem, 0.0, nil)
	if err != nil {
		t.Fatal(err)
	}
	arr, err := Init(mem[4096:], 10, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Start(t, "negate", path).WaitOK()
	if got := num.Load(); got != 3.1415927 {
		t.Errorf("num = %v", got)
	}
	if got := arr.Slice(0, arr.Len()); !slices.Equal(got, []int32{0, -1, -2, -3, -4, -5, -6, -7, -8, -9}) {
		t.Errorf("arr = %v", got)
	}
}

// TestProcFourSetters: four children each set arr[i] = 100+i.
func TestProcFourSetters(t *testing.T) {
	size, _ := SizeOf[int64](4)
	mem, path := mapFile(t, size)
	arr, err := Init(mem, 4, []int64{11, 22, 33, 44}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*proctest.Child
	for i := range 4 {
		cs = append(cs, proctest.Start(t, "setOne", path, strconv.Itoa(i)))
	}
	for i, out := range proctest.WaitAll(cs) {
		if strings.TrimSpace(out) != strconv.Itoa(100+i) {
			t.Errorf("child %d printed %q", i, out)
		}
	}
	if got := arr.Slice(0, 4); !slices.Equal(got, []int64{100, 101, 102, 103}) {
		t.Errorf("arr = %v", got)
	}
}

// SetRaw refuses a source longer than the array (CopyIn truncates), and
// SetSlice refuses ranges outside the array and sources of the wrong
// length with errors, never a panic, changing nothing.
func TestSetRawAndSetSlice(t *testing.T) {
	a := newArray[byte](t, 4, []byte("abcd"), nil)
	if err := a.SetRaw([]byte("toolong")); !errors.Is(err, ErrTooLong) {
		t.Fatalf("SetRaw too long: %v", err)
	}
	if string(a.Raw()) != "abcd" {
		t.Fatalf("a refused SetRaw changed the array: %q", a.Raw())
	}
	if err := a.SetRaw([]byte("xy")); err != nil || string(a.Raw()) != "xycd" {
		t.Fatalf("SetRaw short: %v %q", err, a.Raw())
	}
	b := newArray[int32](t, 5, []int32{1, 2, 3, 4, 5}, nil)
	for _, c := range []struct {
		i, j int
		src  []int32
		want error
	}{
		{-1, 2, []int32{0, 0, 0}, ErrRange},
		{2, 6, []int32{0, 0, 0, 0}, ErrRange},
		{3, 2, nil, ErrRange},
		{1, 3, []int32{9}, ErrSliceLength},
		{1, 3, []int32{9, 9, 9}, ErrSliceLength},
	} {
		if err := b.SetSlice(c.i, c.j, c.src); !errors.Is(err, c.want) {
			t.Errorf("SetSlice(%d, %d, %v) = %v, want %v", c.i, c.j, c.src, err, c.want)
		}
	}
	if err := b.SetSlice(1, 3, []int32{7, 8}); err != nil {
		t.Fatal(err)
	}
	if got := b.Slice(0, 5); !slices.Equal(got, []int32{1, 7, 8, 4, 5}) {
		t.Fatalf("after SetSlice: %v", got)
	}
	mem := anon(t, 4096)
	r, err := InitRaw[int32](mem, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSlice(0, 4, []int32{1, 2, 3, 4}); !errors.Is(err, ErrRange) {
		t.Fatalf("RawArray.SetSlice out of range: %v", err)
	}
	if err := r.SetSlice(0, 3, []int32{1, 2, 3}); err != nil || r.At(2) != 3 {
		t.Fatalf("RawArray.SetSlice: %v", err)
	}
}
