//go:build !linux

package membarrier

func register() bool { return false }

func global() bool { return false }
