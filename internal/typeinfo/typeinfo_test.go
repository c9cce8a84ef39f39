//go:build linux

package typeinfo

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

type point struct {
	X, Y float64
	N    int32
	OK   bool
}

type pointRenamed struct {
	A, B float64
	C    int32
	D    bool
}

type sameSizeOther struct {
	X, Y float64
	N    uint32 // unsigned instead of signed
	OK   bool
}

type sameSizeShuffled struct {
	N    int32
	OK   bool
	X, Y float64
}

type nested struct {
	P   [3]point
	M   [2][2]complex128
	Pad [5]byte
	_   [3]uint8
	I   int
}

type Count int64

func TestAccepted(t *testing.T) {
	check := func(t *testing.T, got Info, err error, size, align uintptr) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != size || got.Align != align || got.Fingerprint == 0 || got.Desc == "" {
			t.Fatalf("got %+v, want size %d align %d", got, size, align)
		}
	}
	i, err := Of[int8]()
	check(t, i, err, 1, 1)
	i, err = Of[uint16]()
	check(t, i, err, 2, 2)
	i, err = Of[bool]()
	check(t, i, err, 1, 1)
	i, err = Of[complex128]()
	check(t, i, err, 16, unsafe.Alignof(complex128(0))) // 4 on 386
	i, err = Of[point]()
	check(t, i, err, unsafe.Sizeof(point{}), unsafe.Alignof(point{}))
	i, err = Of[nested]()
	check(t, i, err, unsafe.Sizeof(nested{}), unsafe.Alignof(nested{}))
	i, err = Of[[7]byte]()
	check(t, i, err, 7, 1)
	if i.Desc != "[7]uint8" {
		t.Errorf("Desc = %q", i.Desc)
	}
	i, err = Of[point]()
	if err != nil || i.Desc != "struct{0:float64 8:float64 16:int32 20:bool}" {
		t.Errorf("Desc = %q, %v", i.Desc, err)
	}
}

func TestFingerprint(t *testing.T) {
	fp := func(i Info, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return i.Fingerprint
	}
	p := fp(Of[point]())
	if q := fp(Of[pointRenamed]()); q != p {
		t.Errorf("same layout, other names: %x != %x", q, p)
	}
	if q := fp(Of[sameSizeOther]()); q == p {
		t.Errorf("int32 vs uint32 field: same fingerprint %x", q)
	}
	if q := fp(Of[sameSizeShuffled]()); q == p {
		t.Errorf("fields at other offsets: same fingerprint %x", q)
	}
	if unsafe.Sizeof(sameSizeShuffled{}) != unsafe.Sizeof(point{}) {
		t.Fatal("test types should have the same size")
	}
	intN := fp(Of[int64]()) // int is int64 or int32, by the platform
	if unsafe.Sizeof(0) == 4 {
		intN = fp(Of[int32]())
	}
	if fp(Of[Count]()) != fp(Of[int64]()) || fp(Of[int]()) != intN {
		t.Error("named integer should match int64, int its fixed-size twin")
	}
	distinct := map[uint64]string{}
	for name, f := range map[string]uint64{
		"int64": fp(Of[int64]()), "uint64": fp(Of[uint64]()), "float64": fp(Of[float64]()),
		"complex64": fp(Of[complex64]()), "[2]int32": fp(Of[[2]int32]()), "[2]float32": fp(Of[[2]float32]()),
		"[8]uint8": fp(Of[[8]uint8]()), "[4]uint16": fp(Of[[4]uint16]()), "bool": fp(Of[bool]()),
		"uint8": fp(Of[uint8]()), "int8": fp(Of[int8]()), "struct{int64}": fp(Of[struct{ A int64 }]()),
		"[1]int64": fp(Of[[1]int64]()), "[3]point": fp(Of[[3]point]()), "[3]pointOther": fp(Of[[3]sameSizeOther]()),
	} {
		if prev, dup := distinct[f]; dup {
			t.Errorf("%s and %s share fingerprint %x", name, prev, f)
		}
		distinct[f] = name
	}
}

type withPtr struct {
	A int64
	B [2]struct {
		C int32
		P *int
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"pointer", second(Of[*int]()), "*int"},
		{"uintptr", second(Of[uintptr]()), "uintptr"},
		{"unsafe.Pointer", second(Of[unsafe.Pointer]()), "unsafe.Pointer"},
		{"slice", second(Of[[]int]()), "[]int"},
		{"string", second(Of[string]()), "string"},
		{"map", second(Of[map[int]int]()), "map"},
		{"interface", second(Of[any]()), "interface"},
		{"chan", second(Of[chan int]()), "chan"},
		{"func", second(Of[func()]()), "func"},
		{"nested field", second(Of[withPtr]()), "withPtr.B[].P"},
		{"array of strings", second(Of[[2]string]()), "[2]string[]"},
		{"zero size", second(Of[struct{}]()), "size zero"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, ErrUnsupportedType) {
			t.Errorf("%s: err = %v, want ErrUnsupportedType", c.name, c.err)
			continue
		}
		if !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %q does not name %q", c.name, c.err, c.want)
		}
	}
}

func second(_ Info, err error) error { return err }

func TestCachedNoAlloc(t *testing.T) {
	if _, err := Of[nested](); err != nil {
		t.Fatal(err)
	}
	_, err := Of[withPtr]()
	n := testing.AllocsPerRun(100, func() {
		if i, _ := Of[nested](); i.Size == 0 {
			panic("no info")
		}
		if _, e := Of[withPtr](); e != err {
			panic("error not cached")
		}
	})
	if n != 0 {
		t.Errorf("Of allocates %v times per call after the first", n)
	}
}

func TestFieldMask(t *testing.T) {
	type padded struct {
		A int8
		B int32
		C [2]int8
	}
	got := FieldMask(reflect.TypeFor[padded]())
	want := []byte{0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}
	if string(got) != string(want) {
		t.Errorf("FieldMask = %x, want %x", got, want)
	}
}

func BenchmarkOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Of[nested]()
	}
}
