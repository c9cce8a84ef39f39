//go:build linux

package semaphore_test

import (
	"context"
	"fmt"

	"github.com/mpipc/mpipc/semaphore"
)

func Example() {
	// Memory the caller owns; in a real program, a segment shared with
	// other processes (semaphore.Create / semaphore.Open).
	mem := make([]byte, semaphore.Size+semaphore.Align)
	off := semaphore.Align - int(uintptrOf(mem)%semaphore.Align)
	s, err := semaphore.InitBounded(mem[off:off+semaphore.Size], 2, nil)
	if err != nil {
		panic(err)
	}
	s.Acquire(context.Background())
	ok, _ := s.TryAcquire()
	fmt.Println("second acquire:", ok, "value:", s.Value())
	ok, _ = s.TryAcquire()
	fmt.Println("third acquire:", ok)
	s.Release(2)
	fmt.Println("value:", s.Value())
	fmt.Println(s.Release(1))
	// Output:
	// second acquire: true value: 0
	// third acquire: false
	// value: 2
	// semaphore: released too many times
}
