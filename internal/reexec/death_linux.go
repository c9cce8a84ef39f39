package reexec

import "syscall"

// deathSignal is the child's attributes: SIGKILL when the thread that
// forked it (the starter) dies, which is when this process does.
func deathSignal() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, nil
}
