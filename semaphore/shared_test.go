//go:build linux

package semaphore_test

import (
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
)

// newShared maps a fresh /dev/shm file of size bytes; see proctest.SharedFile.
func newShared(tb testing.TB, size int) (string, []byte) {
	tb.Helper()
	return proctest.SharedFile(tb, size)
}

// mapShared maps the file at path (child side).
func mapShared(path string) ([]byte, error) { return proctest.MapFile(path) }

func u32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func i32(mem []byte, off int) *int32  { return (*int32)(unsafe.Pointer(&mem[off])) }

func load(mem []byte, off int) int32 { return atomic.LoadInt32(i32(mem, off)) }
