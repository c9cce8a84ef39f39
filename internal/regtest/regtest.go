// Package regtest gives tests that place objects in memory of their own
// (Init/Attach over proctest.SharedFile) a process registry that every
// test process shares: a small segment beside the shared file, whose
// registry they pass as Options.Registry. Without one, an object cannot
// tell a dead process from a live one (see shm.Registry).
package regtest

import (
	"testing"

	"github.com/mpipc/mpipc/shm"
)

// path is the file of the registry segment for the shared file at file.
func path(file string) string { return file + ".reg" }

// Registry returns the registry shared by the processes of a test that
// share the file at file, creating it if needed. It is closed and removed
// when the test ends.
func Registry(tb testing.TB, file string) *shm.Registry {
	tb.Helper()
	seg, err := shm.OpenOrCreate(path(file), &shm.Options{Size: 64 << 10, MaxObjects: 1, MaxProcs: 256})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		seg.Close()
		shm.Remove(path(file), nil)
	})
	return seg.Registry()
}

// Open is Registry for a child process: the registry stays attached until
// the process exits.
func Open(file string) (*shm.Registry, error) {
	seg, err := shm.Open(path(file), nil)
	if err != nil {
		return nil, err
	}
	return seg.Registry(), nil
}
