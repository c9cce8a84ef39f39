//go:build linux

package value

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
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
	proctest.Register("stopHoldingWriter", roleStopHoldingWriter)
	proctest.Main(m)
}

// mapFile maps a fresh /dev/shm file of size bytes; see proctest.SharedFile.
func mapFile(tb testing.TB, size int) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, size)
	return mem, path
}

// childOpts returns options naming the registry the test's processes
// share (see regtest); nil if it cannot be opened.
func childOpts(path string) *Options {
	reg, err := regtest.Open(path)
	if err != nil {
		return nil
	}
	return &Options{Registry: reg}
}

// mapPath maps the file at path (child side); see proctest.MapFile.
func mapPath(path string) ([]byte, error) { return proctest.MapFile(path) }

// roleAdder: PATH MODE N — adds 1 N times to the Value[int64] in PATH,
// with Update (MODE "update") or Add (MODE "add").
func roleAdder(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[2])
	v, err := Attach[int64](mem, childOpts(args[0]))
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
	v, err := Attach[wide64](mem, childOpts(args[0]))
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
	v, err := Attach[wide64](mem, childOpts(args[0]))
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
	v, err := Attach[int64](mem, childOpts(args[0]))
	if err != nil {
		return err
	}
	if err := v.Lock().Acquire(context.Background()); err != nil {
		return err
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
