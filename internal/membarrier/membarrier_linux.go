//go:build linux

package membarrier

import "golang.org/x/sys/unix"

// Commands of membarrier(2), from linux/membarrier.h.
const (
	cmdQuery                   = 0
	cmdGlobalExpedited         = 1 << 1
	cmdRegisterGlobalExpedited = 1 << 2
)

func membarrier(cmd int) (uintptr, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_MEMBARRIER, uintptr(cmd), 0, 0)
	return r, e
}

func register() bool {
	mask, e := membarrier(cmdQuery)
	if e != 0 || mask&(cmdGlobalExpedited|cmdRegisterGlobalExpedited) != cmdGlobalExpedited|cmdRegisterGlobalExpedited {
		return false
	}
	_, e = membarrier(cmdRegisterGlobalExpedited)
	return e == 0
}

func global() bool {
	_, e := membarrier(cmdGlobalExpedited)
	return e == 0
}
