//go:build linux

package process_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/process"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The roles "sum" (adds 1 to the Value "total" of segment 0, args[0]
// times, under the Lock "lock" of segment 1) and "exit3" are registered
// in TestMain, which then calls process.Main.
func Example() {
	anon, _ := shm.CreateAnonymous(0) // handed over by descriptor
	defer anon.Close()
	name := fmt.Sprintf("mpipc-test-%d-example", os.Getpid())
	named, _ := shm.Create(name, nil) // handed over by path
	defer shm.Remove(name, nil)
	defer named.Close()
	total, _ := value.Create[int64](anon, "total", 0, nil)
	lock.Create(named, "lock", nil)

	g, _ := process.NewGroup(context.Background())
	for range 3 {
		g.Start("sum", &process.Options{Args: []string{"100"}, Segments: []*shm.Segment{anon, named}, Stdout: io.Discard})
	}
	fmt.Println(g.Wait(), total.Load())

	p, _ := process.Start(context.Background(), "exit3", &process.Options{Stderr: io.Discard})
	var ee *process.ExitError
	err := p.Wait()
	fmt.Println(errors.As(err, &ee), ee.Code)
	// Output:
	// <nil> 300
	// true 3
}
