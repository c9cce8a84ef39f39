//go:build linux

package array_test

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/array"
)

func Example() {
	size, _ := array.SizeOf[int32](10)
	mem, _ := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	defer unix.Munmap(mem)

	// Array('i', range(10))
	arr, err := array.Init(mem, 10, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
	if err != nil {
		panic(err)
	}
	arr.Update(0, arr.Len(), func(s []int32) {
		for i := range s {
			s[i] = -s[i]
		}
	})
	fmt.Println(arr.Slice(0, arr.Len()))

	// Another handle, as another process would attach, without a lock.
	raw, _ := array.AttachRaw[int32](mem)
	raw.View()[0] = 100
	fmt.Println(arr.At(0), arr.Len())
	// Output:
	// [0 -1 -2 -3 -4 -5 -6 -7 -8 -9]
	// 100 10
}

func ExampleArray_Value() {
	size, _ := array.SizeOf[byte](8)
	mem, _ := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	defer unix.Munmap(mem)

	s, _ := array.Init(mem, 8, []byte("hello"), nil)
	s.SetValue([]byte("hi"))
	fmt.Printf("%q %q\n", s.Value(), s.Raw())
	// Output:
	// "hi" "hi\x00lo\x00\x00\x00"
}
