//go:build linux

package waitset_test

import (
	"context"
	"fmt"
	"os"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/waitset"
)

func ExampleSelect() {
	name := fmt.Sprintf("mpipc-example-waitset-%d", os.Getpid())
	seg, err := shm.Create(name, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name, nil)
	defer seg.Close()
	jobs, _ := ringbuf.Create(seg, "jobs", 16, 64, nil)
	stop, _ := event.Create(seg, "stop", nil)

	jobs.Put(context.Background(), []byte("job 1")) // in practice, from another process
	get := waitset.Get(jobs, make([]byte, 64))
	for {
		i, err := waitset.Select(context.Background(), get, waitset.EventSet(stop))
		if err != nil {
			fmt.Println(err)
			return
		}
		if i == 1 {
			fmt.Println("stopped")
			return
		}
		fmt.Printf("got %s\n", get.Msg())
		stop.Set()
	}
	// Output:
	// got job 1
	// stopped
}
