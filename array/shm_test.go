//go:build linux

package array

import (
	"errors"
	"slices"
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
