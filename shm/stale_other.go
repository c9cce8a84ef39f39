//go:build !linux

package shm

import "time"

func staleAfter(path string, grace time.Duration) (bool, error) { return false, ErrUnsupported }
