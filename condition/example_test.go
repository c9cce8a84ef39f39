//go:build linux

package condition_test

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/mpipc/mpipc/condition"
)

// The classic pattern: a consumer waits for an item, a producer makes one
// and notifies. In processes, place the Condition in a segment with
// condition.Create and condition.Open.
func Example() {
	n := condition.SizeOf(0)
	buf := make([]uint64, n/8)
	c, err := condition.Init(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), n), nil, nil)
	if err != nil {
		panic(err)
	}
	items := 0 // guarded by c's lock

	done := make(chan struct{})
	go func() { // consumer
		defer close(done)
		c.Acquire(context.Background())
		ok, err := c.WaitFor(context.Background(), func() bool { return items > 0 })
		items--
		c.Release()
		fmt.Println("consumed:", ok, err)
	}()

	c.Acquire(context.Background()) // producer
	items++
	c.Notify(1)
	c.Release()
	<-done

	c.Acquire(context.Background())
	c.Acquire(context.Background()) // the own lock is an RLock: level 2
	ok, err := c.WaitTimeout(1)
	fmt.Println("nobody notified:", ok, err, "level", c.State().Level)
	c.Release()
	c.Release()
	fmt.Println("wait without the lock:", c.Wait(context.Background()))
	// Output:
	// consumed: true <nil>
	// nobody notified: false <nil> level 2
	// wait without the lock: condition: lock not held by the caller
}
