//go:build linux

package ringbuf

import (
	"sort"
	"sync/atomic"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
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

// qTestMap maps a fresh /dev/shm file of n bytes; see proctest.SharedFile.
func qTestMap(tb testing.TB, n int) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, n)
	return mem, path
}

// qChildMap maps the file at path (child side); see proctest.MapFile.
func qChildMap(path string) ([]byte, error) { return proctest.MapFile(path) }

func atomicAddU32(p *uint32, d uint32) uint32 { return atomic.AddUint32(p, d) }
func atomicLoadU32(p *uint32) uint32          { return atomic.LoadUint32(p) }
