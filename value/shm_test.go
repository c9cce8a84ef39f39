//go:build linux

package value

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
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
	v, err := Create(seg, "pi", point{X: 3.1415927}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(seg, "pi", point{}, nil); !errors.Is(err, shm.ErrExist) {
		t.Errorf("second Create: %v", err)
	}
	w, err := Open[point](seg, "pi", nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Store(point{Y: 2})
	if w.Load().Y != 2 {
		t.Error("Open handle does not see Store")
	}
	if _, err := Open[pointOther](seg, "pi", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Errorf("Open with a same-size struct: %v", err)
	}
	if _, err := OpenRaw[int64](seg, "pi", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Errorf("OpenRaw with another type: %v", err)
	}
	r, err := CreateRaw[int32](seg, "n", 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Add(1) != 6 {
		t.Error("RawValue in a segment")
	}
	if _, err := Open[int32](seg, "n", nil); !errors.Is(err, ErrNoLock) {
		t.Errorf("Open of a RawValue as Value: %v", err)
	}
}

// TestLoadBytes: the type-erased Load reads a one-word and a
// double-buffered Value by a reflect.Type, and refuses another type (with
// both sizes), an unsupported type and a missing name.
func TestLoadBytes(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatalf("shm.Create: %v", err)
	}
	defer seg.Close()
	if _, err := Create(seg, "narrow", [2]int16{-2, 7}, nil); err != nil {
		t.Fatal(err)
	}
	wide, err := Create(seg, "wide", [3]uint64{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wide.Store([3]uint64{4, 5, 1 << 63})
	b, err := LoadBytes(seg, "narrow", reflect.TypeFor[[2]int16]())
	if err != nil || !bytes.Equal(b, []byte{0xfe, 0xff, 7, 0}) {
		t.Errorf("LoadBytes narrow = %x, %v", b, err)
	}
	b, err = LoadBytes(seg, "wide", reflect.TypeFor[[3]uint64]())
	want := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 4), 5), 1<<63)
	if err != nil || !bytes.Equal(b, want) {
		t.Errorf("LoadBytes wide = %x, %v", b, err)
	}
	if _, err := LoadBytes(seg, "wide", reflect.TypeFor[[4]uint64]()); !errors.Is(err, shm.ErrTypeMismatch) ||
		!strings.Contains(err.Error(), "type of 24 bytes") || !strings.Contains(err.Error(), "is 32 bytes") {
		t.Errorf("LoadBytes with another size: %v", err)
	}
	if _, err := LoadBytes(seg, "wide", reflect.TypeFor[string]()); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("LoadBytes of a string: %v", err)
	}
	if _, err := LoadBytes(seg, "nope", reflect.TypeFor[int64]()); !errors.Is(err, shm.ErrNotExist) {
		t.Errorf("LoadBytes of a missing name: %v", err)
	}
	// LoadBytes, and its refusal of another type, give their holds back:
	// once the handles are gone the objects can be destroyed.
	runtime.GC()
	runtime.GC()
	for _, name := range []string{"narrow", "wide"} {
		if err := seg.Destroy(name); err != nil {
			t.Errorf("Destroy(%q) after LoadBytes: %v", name, err)
		}
	}
}
