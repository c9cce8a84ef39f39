//go:build linux

package event_test

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/event"
)

func Example() {
	// Memory the caller owns; in a real program, a segment shared with
	// other processes (event.Create / event.Open).
	buf := make([]byte, event.Size+event.Align)
	off := event.Align - int(uintptr(unsafe.Pointer(&buf[0]))%event.Align)
	ready, err := event.Init(buf[off:off+event.Size], nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("set:", ready.IsSet(), "wait 10ms:", ready.WaitTimeout(10*time.Millisecond))
	go func() {
		time.Sleep(10 * time.Millisecond)
		ready.Set() // "the server is ready"
	}()
	if err := ready.Wait(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("set:", ready.IsSet())
	ready.Clear()
	fmt.Println("set:", ready.IsSet())
	// Output:
	// set: false wait 10ms: false
	// set: true
	// set: false
}
