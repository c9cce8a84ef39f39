//go:build linux

package value

import (
	"os"
	"sync/atomic"
	"syscall"
)

// dieMidWriteForTest does what a writer killed in the middle of a Store
// leaves behind: the writer lock held by this process and half of the
// unpublished slot written; then the process kills itself.
func (c *cell[T]) dieMidWriteForTest(x T) {
	c.lockWriter()
	s := atomic.LoadUint64(c.seq)
	b := bytesOf(&x, c.size)
	copyIn(c.slotAt(s+1), b[:len(b)/2])
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
