//go:build linux

package value_test

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/value"
)

func Example() {
	// Memory another process could map too (here: an anonymous mapping).
	size, _ := value.SizeOf[float64]()
	mem, _ := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	defer unix.Munmap(mem)

	num, err := value.Init(mem, 0.0, nil)
	if err != nil {
		panic(err)
	}
	num.Store(3.1415927)
	num.Add(1)
	num.Update(func(x *float64) { *x *= 2 })
	fmt.Println(num.Load())

	// Another handle on the same memory, as another process would attach.
	again, _ := value.Attach[float64](mem, nil)
	fmt.Println(again.Load())

	// The wrong type is refused.
	_, err = value.Attach[int64](mem, nil)
	fmt.Println(err != nil)
	// Output:
	// 8.2831854
	// 8.2831854
	// true
}
