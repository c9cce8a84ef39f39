//go:build linux

package membarrier

import "testing"

// On the kernels mpipc supports (4.16 and later) registration works and
// the barrier is granted; a refusal would leave every pipe on its fenced
// path, which this test makes visible.
func TestRegisterAndGlobal(t *testing.T) {
	mask, e := membarrier(cmdQuery)
	if e != 0 || mask&cmdRegisterGlobalExpedited == 0 {
		t.Skipf("membarrier unsupported here (mask %#x, errno %v): pipes publish with a fence", mask, e)
	}
	if !Register() {
		t.Fatal("Register failed although the kernel offers the command")
	}
	if !Register() {
		t.Fatal("a second Register disagrees with the first")
	}
	if !Global() {
		t.Fatal("Global refused after registration")
	}
}

// An unknown command is refused: the errno that register and global turn
// into false.
func TestRefused(t *testing.T) {
	if _, e := membarrier(1 << 30); e == 0 {
		t.Fatal("membarrier accepted an unknown command")
	}
}
