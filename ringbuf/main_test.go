package ringbuf

import (
	"os"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"golang.org/x/sys/unix"
)

// roles are the child-process roles of this package's tests. Each test
// file adds its own in an init function; TestMain registers them all.
var roles = map[string]func(args []string) error{}

func TestMain(m *testing.M) {
	names := make([]string, 0, len(roles))
	for name := range roles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		proctest.Register(name, roles[name])
	}
	proctest.Main(m)
}

// qTestMap creates a file of n bytes in /dev/shm, maps it shared and
// returns the mapping and the file's path (for children). Cleanup unmaps
// and removes it.
func qTestMap(tb testing.TB, n int) ([]byte, string) {
	tb.Helper()
	f, err := os.CreateTemp("/dev/shm", "mpipc-ringbuf-test-*")
	if err != nil {
		tb.Fatal(err)
	}
	path := f.Name()
	tb.Cleanup(func() { os.Remove(path) })
	defer f.Close()
	if err := f.Truncate(int64(n)); err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return mem, path
}

// qChildMap maps the file at path shared (child side). The mapping lives
// until the process exits.
func qChildMap(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func atomicAddU32(p *uint32, d uint32) uint32 { return atomic.AddUint32(p, d) }
func atomicLoadU32(p *uint32) uint32          { return atomic.LoadUint32(p) }
