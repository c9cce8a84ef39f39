//go:build linux

package shm

import (
	"errors"
	"runtime"
	"testing"
)

// TestErrUnsupported: the one sentinel of unsupported platforms is the
// standard library's class, and on Linux little-endian nothing refuses.
func TestErrUnsupported(t *testing.T) {
	if !errors.Is(ErrUnsupported, errors.ErrUnsupported) {
		t.Fatalf("ErrUnsupported %v does not wrap errors.ErrUnsupported", ErrUnsupported)
	}
	s, err := CreateAnonymous(0)
	if err == nil {
		defer s.Close()
	}
	if runtime.GOOS != "linux" || !littleEndian {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("CreateAnonymous on %s/%s = %v, want ErrUnsupported", runtime.GOOS, runtime.GOARCH, err)
		}
		return
	}
	if errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CreateAnonymous on %s/%s = %v", runtime.GOOS, runtime.GOARCH, err)
	}
}
