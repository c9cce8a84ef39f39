//go:build linux

package barrier_test

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
)

func Example() {
	// Memory the caller owns; in a real program, a segment shared with
	// other processes (barrier.Create / barrier.Open).
	size := barrier.SizeOf(3, 0)
	buf := make([]byte, size+barrier.Align)
	off := barrier.Align - int(uintptr(unsafe.Pointer(&buf[0]))%barrier.Align)
	rounds := 0
	b, err := barrier.Init(buf[off:off+size], 3, &barrier.Options{
		Action: func() error { rounds++; return nil },
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	var wg sync.WaitGroup
	indices := make([]int, 3)
	for i := range indices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			indices[i], _ = b.Wait(context.Background())
		}()
	}
	wg.Wait()
	sum := 0
	for _, i := range indices {
		sum += i
	}
	fmt.Println("rounds:", rounds, "index sum:", sum, "broken:", b.Broken())
	b.Abort()
	_, err = b.Wait(context.Background())
	fmt.Println(err)
	b.Reset()
	fmt.Println("broken:", b.Broken(), "waiting:", b.NWaiting())
	// Output:
	// rounds: 1 index sum: 3 broken: false
	// barrier: broken
	// broken: false waiting: 0
}
