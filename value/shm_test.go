//go:build linux

package value

import (
	"errors"
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
