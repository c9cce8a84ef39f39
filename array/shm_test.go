//go:build linux

package array

import (
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

// TestSegment: Create and Open by name in a segment, and the directory's
// type check.
func TestSegment(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatalf("shm.Create: %v", err)
	}
	defer seg.Close()
	a, err := Create(seg, "a", 10, []int32{0, 1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create[int32](seg, "a", 1, nil, nil); !errors.Is(err, shm.ErrExist) {
		t.Errorf("second Create: %v", err)
	}
	b, err := Open[int32](seg, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Set(9, 9)
	if !slices.Equal(b.Slice(0, 10), []int32{0, 1, 2, 0, 0, 0, 0, 0, 0, 9}) {
		t.Errorf("Open handle sees %v", b.Slice(0, 10))
	}
	if _, err := Open[float32](seg, "a", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Errorf("Open with another type: %v", err)
	}
	if _, err := Create[point](seg, "p", 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRaw[pointOther](seg, "p"); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Errorf("OpenRaw with a same-size struct: %v", err)
	}
	r, err := CreateRaw[byte](seg, "s", 16, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Value()) != "abc" {
		t.Error("RawArray in a segment")
	}
	if _, err := Open[byte](seg, "s", nil); !errors.Is(err, ErrNoLock) {
		t.Errorf("Open of a RawArray as Array: %v", err)
	}
}

// TestReadBytes: the type-erased read of an Array by a reflect.Type, with
// a limit, and its refusals: another element size (both sizes named), an
// unsupported type, a missing name.
func TestReadBytes(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatalf("shm.Create: %v", err)
	}
	defer seg.Close()
	if _, err := Create(seg, "m", 3, [][2]uint8{{1, 2}, {3, 4}, {5, 6}}, nil); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[[2]uint8]()
	for _, tc := range []struct {
		limit int
		want  []byte
	}{{10, []byte{1, 2, 3, 4, 5, 6}}, {2, []byte{1, 2, 3, 4}}, {0, []byte{}}, {-1, []byte{}}} {
		b, n, err := ReadBytes(seg, "m", typ, tc.limit)
		if err != nil || n != 3 || !slices.Equal(b, tc.want) {
			t.Errorf("ReadBytes limit %d = %v, %d, %v; want %v, 3", tc.limit, b, n, err, tc.want)
		}
	}
	if _, _, err := ReadBytes(seg, "m", reflect.TypeFor[[3]uint8](), 10); !errors.Is(err, shm.ErrTypeMismatch) ||
		!strings.Contains(err.Error(), "stored elements are 2 bytes") || !strings.Contains(err.Error(), "is 3 bytes") {
		t.Errorf("ReadBytes with another size: %v", err)
	}
	if _, _, err := ReadBytes(seg, "m", reflect.TypeFor[[]byte](), 10); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("ReadBytes of a slice type: %v", err)
	}
	if _, _, err := ReadBytes(seg, "nope", typ, 10); !errors.Is(err, shm.ErrNotExist) {
		t.Errorf("ReadBytes of a missing name: %v", err)
	}
	// ReadBytes, and its refusal of another size, give their holds back:
	// once the handle is gone the Array can be destroyed.
	runtime.GC()
	runtime.GC()
	if err := seg.Destroy("m"); err != nil {
		t.Errorf("Destroy after ReadBytes: %v", err)
	}
}
