package value

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proctest"
)

// wide64 is a 64-byte struct: the torn-read test flips it between two
// patterns in which every word is equal.
type wide64 struct{ W [8]uint64 }

func pattern(v uint64) wide64 {
	var w wide64
	for i := range w.W {
		w.W[i] = v
	}
	return w
}

func (w wide64) uniform() bool {
	for _, x := range w.W {
		if x != w.W[0] {
			return false
		}
	}
	return true
}

func TestMain(m *testing.M) {
	proctest.Register("adder", roleAdder)
	proctest.Register("flipper", roleFlipper)
	proctest.Register("dieMidWrite", roleDieMidWrite)
	proctest.Register("dieHolding", roleDieHolding)
	proctest.Main(m)
}

// mapFile creates a file in /dev/shm of size bytes, maps it shared and
// returns the mapping and the path, both cleaned up with the test.
func mapFile(tb testing.TB, size int) ([]byte, string) {
	tb.Helper()
	f, err := os.CreateTemp("/dev/shm", "mpipc-value-test-")
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

// mapPath maps an existing file (child side).
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

// roleAdder: PATH MODE N — adds 1 N times to the Value[int64] in PATH,
// with Update (MODE "update") or Add (MODE "add").
func roleAdder(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[2])
	v, err := Attach[int64](mem, nil)
	if err != nil {
		return err
	}
	start, err := AttachRaw[int32](mem[4096:], nil)
	if err != nil {
		return err
	}
	proctest.SignalReady()
	for start.Load() == 0 { // both adders start together
		runtime.Gosched()
	}
	for range n {
		switch args[1] {
		case "update":
			if _, err := v.Update(func(p *int64) { *p++ }); err != nil {
				return err
			}
		case "add":
			v.Add(1)
		case "racy": // Python's v.value += 1 without the lock, for comparison
			v.Store(v.Load() + 1)
		default:
			return fmt.Errorf("bad mode %q", args[1])
		}
	}
	return nil
}

// roleFlipper: PATH — stores pattern(1) and pattern(2) alternately into
// the Value[wide64] in PATH until the RawValue[int64] after it (at offset
// 4096) becomes nonzero; prints the number of stores.
func roleFlipper(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	v, err := Attach[wide64](mem, nil)
	if err != nil {
		return err
	}
	stop, err := AttachRaw[int64](mem[4096:], nil)
	if err != nil {
		return err
	}
	a, b := pattern(0x0101010101010101), pattern(0xfefefefefefefefe)
	proctest.SignalReady()
	n := 0
	for stop.Load() == 0 {
		for range 64 {
			v.Store(a)
			v.Store(b)
		}
		n += 128
	}
	fmt.Println(n)
	return nil
}

// roleDieMidWrite: PATH — takes the writer lock of the Value[wide64] in
// PATH, writes half of the unpublished slot with pattern(9), and dies.
func roleDieMidWrite(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	v, err := Attach[wide64](mem, nil)
	if err != nil {
		return err
	}
	v.c.dieMidWriteForTest(pattern(9))
	return nil
}

// roleDieHolding: PATH — acquires the own lock of the Value[int64] in PATH
// and dies holding it.
func roleDieHolding(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	v, err := Attach[int64](mem, nil)
	if err != nil {
		return err
	}
	if err := v.Lock().Acquire(nil); err != nil {
		return err
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
