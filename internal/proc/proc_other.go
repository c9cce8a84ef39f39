//go:build !linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errUnsupported: open file description locks (F_OFD_SETLK) are Linux's.
var errUnsupported = fmt.Errorf("proc: no process registry on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Attach fails with an error wrapping [errors.ErrUnsupported].
func Attach(f *os.File, path string, off int64, n int) (*Registry, error) {
	return nil, errUnsupported
}

// Release does nothing: only Attach makes registries that hold a slot.
func (r *Registry) Release() error { return nil }

func lockedAt(fd int, slot uint32) (bool, error) { return false, errUnsupported }
