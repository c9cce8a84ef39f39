//go:build linux

package dict_test

import (
	"fmt"
	"os"
	"slices"

	"github.com/mpipc/mpipc/dict"
	"github.com/mpipc/mpipc/shm"
)

func Example() {
	// A segment other processes open by name (shm.Open); removed at the end.
	name := fmt.Sprintf("dict-example-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer shm.Remove(name, nil)
	defer seg.Close()

	counts, err := dict.Create[int32, int64](seg, "counts", 1000, nil)
	if err != nil {
		panic(err)
	}
	counts.Set(7, 1)
	// An atomic read-modify-write, safe against other processes.
	counts.Update(7, func(old int64, ok bool) (int64, bool) { return old + 41, true })
	counts.LoadOrStore(8, 100)
	v, ok := counts.Get(7)
	fmt.Println(v, ok, counts.Len())

	// What another process does: open by name with the same types.
	again, _ := dict.Open[int32, int64](seg, "counts", nil)
	var keys []int32
	for k := range again.All() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Println(keys)

	// Other types are refused.
	_, err = dict.Open[int64, int64](seg, "counts", nil)
	fmt.Println(err != nil)
	// Output:
	// 42 true 2
	// [7 8]
	// true
}

func ExampleBytes() {
	name := fmt.Sprintf("dict-example-bytes-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer shm.Remove(name, nil)
	defer seg.Close()

	// Python's d["user:42"] = blob: keys up to 32 bytes, values up to 256.
	d, err := dict.CreateBytes(seg, "sessions", 100, 32, 256, nil)
	if err != nil {
		panic(err)
	}
	d.Set([]byte("user:42"), []byte(`{"cart":[3,5]}`))
	buf := make([]byte, d.MaxValue())
	n, ok := d.Get([]byte("user:42"), buf)
	fmt.Println(string(buf[:n]), ok)
	_, ok = d.Get([]byte("user:43"), buf)
	fmt.Println(ok)
	// Output:
	// {"cart":[3,5]} true
	// false
}
