//go:build !linux

package reexec

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// deathSignal fails: without a parent-death signal a child would outlive
// a killed parent, which Start promises it does not.
func deathSignal() (*syscall.SysProcAttr, error) {
	return nil, fmt.Errorf("no parent-death signal on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
