//go:build linux

package faults_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// A named segment truncated behind the back of the processes that map it:
// their next access to a page past the new end faults (SIGBUS, fatal
// unless debug.SetPanicOnFault is set), but anything that opens or
// inspects the file first is told, before mapping, with shm.ErrTruncated.
func Example_truncatedSegment() {
	dir, _ := os.MkdirTemp("", "faults-example")
	defer os.RemoveAll(dir)
	seg, err := shm.Create("jobs", &shm.Options{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Close()
	if _, err := lock.Create(seg, "mu", nil); err != nil {
		fmt.Println(err)
		return
	}
	path := filepath.Join(dir, "jobs")
	os.Truncate(path, 4096) // keeps the header page, cuts the objects off

	_, err = shm.Open("jobs", &shm.Options{Dir: dir})
	fmt.Println("Open:", errors.Is(err, shm.ErrTruncated))
	_, err = shm.Inspect(path)
	fmt.Println("Inspect:", errors.Is(err, shm.ErrTruncated))
	// Output:
	// Open: true
	// Inspect: true
}
