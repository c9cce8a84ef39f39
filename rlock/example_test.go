//go:build linux

package rlock_test

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/mpipc/mpipc/rlock"
)

func Example() {
	// Memory another library owns; in a segment use rlock.Create/Open.
	mem := make([]uint64, rlock.Size/8)
	r, err := rlock.Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), rlock.Size), nil)
	if err != nil {
		panic(err)
	}

	r.Acquire(context.Background())
	r.Acquire(context.Background()) // the owner re-acquires: level 2
	fmt.Println("level", r.Level())

	done := make(chan struct{})
	go func() { // another goroutine is not the owner
		defer close(done)
		ok, _ := r.TryAcquire()
		fmt.Println("other goroutine acquired:", ok)
		fmt.Println("other goroutine release:", r.Release())
	}()
	<-done

	level, _ := r.ReleaseAll() // what a Condition's Wait does
	fmt.Println("released from level", level, "held:", r.State().Held)
	r.AcquireLevel(context.Background(), level)
	fmt.Println("restored level", r.Level())
	r.Release()
	r.Release()
	fmt.Println("held:", r.State().Held)
	// Output:
	// level 2
	// other goroutine acquired: false
	// other goroutine release: rlock: release by a goroutine that does not own the lock
	// released from level 2 held: false
	// restored level 2
	// held: false
}
