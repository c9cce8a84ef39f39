//go:build linux

package value_test

import (
	"errors"
	"testing"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The "unsupported element type" error users are told to expect is
// matchable through each package that takes a T, as one value.
func TestUnsupportedTypeSentinels(t *testing.T) {
	seg, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	_, err = value.Create[string](seg, "v", "x", nil)
	if !errors.Is(err, value.ErrUnsupportedType) {
		t.Errorf("value.Create[string]: %v", err)
	}
	_, err = array.Create[*int](seg, "a", 4, nil, nil)
	if !errors.Is(err, array.ErrUnsupportedType) {
		t.Errorf("array.Create[*int]: %v", err)
	}
	_, err = ringbuf.CreateTyped[[]byte](seg, "q", 4, nil)
	if !errors.Is(err, ringbuf.ErrUnsupportedType) {
		t.Errorf("ringbuf.CreateTyped[[]byte]: %v", err)
	}
	if value.ErrUnsupportedType != array.ErrUnsupportedType || array.ErrUnsupportedType != ringbuf.ErrUnsupportedType {
		t.Error("the three sentinels differ")
	}
}
