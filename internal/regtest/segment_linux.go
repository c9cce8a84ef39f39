//go:build linux

package regtest

import (
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

// Segment creates a named segment, with the default options, for a test
// whose processes share objects by name; it is closed when the test ends
// (proctest.TempName removes its file). It returns the segment and its
// name, for the test's children.
func Segment(tb testing.TB) (*shm.Segment, string) {
	tb.Helper()
	name := proctest.TempName(tb)
	seg, err := shm.Create(name, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { seg.Close() })
	return seg, name
}
