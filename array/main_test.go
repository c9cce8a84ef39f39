package array

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/value"
)

func TestMain(m *testing.M) {
	proctest.Register("negate", roleNegate)
	proctest.Register("setOne", roleSetOne)
	proctest.Register("w9writer", roleW9Writer)
	proctest.Main(m)
}

// mapFile creates a file in /dev/shm of size bytes, maps it shared and
// returns the mapping and the path, both cleaned up with the test.
func mapFile(tb testing.TB, size int) ([]byte, string) {
	tb.Helper()
	f, err := os.CreateTemp("/dev/shm", "mpipc-array-test-")
	if err != nil {
		tb.Fatal(err)
	}
	path := f.Name()
	tb.Cleanup(func() { os.Remove(path) })
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return mem, path
}

func mapPath(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// Python's documentation example, the child's half:
//
//	def f(n, a):
//	    n.value = 3.1415927
//	    for i in range(len(a)):
//	        a[i] = -a[i]
//
// PATH holds a Value[float64] at 0 and an Array[int32] at 4096.
func roleNegate(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	n, err := value.Attach[float64](mem, nil)
	if err != nil {
		return err
	}
	a, err := Attach[int32](mem[4096:], nil)
	if err != nil {
		return err
	}
	n.Store(3.1415927)
	for i := range a.Len() {
		a.Set(i, -a.At(i))
	}
	return nil
}

// roleSetOne: PATH I — sets arr[I] = 100+I in the Array[int64] in PATH.
func roleSetOne(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	a, err := Attach[int64](mem, nil)
	if err != nil {
		return err
	}
	i, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	a.Set(i, int64(100+i))
	fmt.Println(a.At(i))
	return nil
}
