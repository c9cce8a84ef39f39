//go:build !linux

package futex

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// errUnsupported is what waits return where shared-memory futexes do not
// exist. Nothing waits there in practice: shm refuses to create or open a
// segment first, with an error of the same class.
var errUnsupported = fmt.Errorf("futex: no shared-memory futex on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Wait fails with an error that wraps [errors.ErrUnsupported]: this
// operating system has no futex shared between processes.
func Wait(ctx context.Context, addr *uint32, val uint32, deadline time.Time) error {
	return errUnsupported
}

// WaitAny fails as [Wait] does.
func WaitAny(ctx context.Context, addrs []*uint32, vals []uint32, deadline time.Time) error {
	return errUnsupported
}

// Wake wakes nobody: nobody can sleep.
func Wake(addr *uint32, n int) int { return 0 }

// WakeAll wakes nobody.
func WakeAll(addr *uint32) int { return 0 }

// Hub reports false: there is no waiting hub.
func Hub() bool { return false }

// WakeLocal wakes nobody.
func WakeLocal(addr *uint32) {}
