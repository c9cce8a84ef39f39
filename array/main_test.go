//go:build linux

package array

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/value"
)

func TestMain(m *testing.M) {
	proctest.Register("negate", roleNegate)
	proctest.Register("setOne", roleSetOne)
	proctest.Register("w9writer", roleW9Writer)
	proctest.Main(m)
}

// mapFile maps a fresh /dev/shm file of size bytes; see proctest.SharedFile.
func mapFile(tb testing.TB, size int) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, size)
	return mem, path
}

// mapPath maps the file at path (child side); see proctest.MapFile.
func mapPath(path string) ([]byte, error) { return proctest.MapFile(path) }

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
