package barrier_test

import (
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newShared maps a fresh file in /dev/shm of size bytes, MAP_SHARED, and
// returns its path (for child processes) and the mapping. The file and the
// mapping go away when the test ends.
func newShared(tb testing.TB, size int) (string, []byte) {
	tb.Helper()
	f, err := os.CreateTemp("/dev/shm", "mpipc-bartest-*")
	if err != nil {
		tb.Fatal(err)
	}
	path := f.Name()
	tb.Cleanup(func() { os.Remove(path) })
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return path, mem
}

// mapShared maps the file at path (child side).
func mapShared(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func u32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func i32(mem []byte, off int) *int32  { return (*int32)(unsafe.Pointer(&mem[off])) }

func load(mem []byte, off int) int32 { return atomic.LoadInt32(i32(mem, off)) }
