//go:build linux

package ringbuf

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

var pipeBenchSizes = []struct {
	name string
	size int
	capa int // ring bytes: as much memory as the C anchors' rings
}{
	{"64B", 64, 64 << 10},   // c-spsc-ring: 1024 slots of 64 B
	{"4KiB", 4096, 1 << 20}, // c-spsc-ring: 256 slots of 4 KiB
}

// BenchmarkPipeUncontended is one Send and one Recv of 64 bytes on one
// goroutine: the fast path, with no syscall and no allocation.
func BenchmarkPipeUncontended(b *testing.B) {
	a, c, _ := pipeTestPair(b, nil)
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Recv(context.Background(), buf); err != nil {
			b.Fatal(err)
		}
	}
	if w := a.State().Wakes + c.State().Wakes; w != 0 {
		b.Fatalf("%d wake syscalls on the uncontended path", w)
	}
}

// BenchmarkPipeSPSC streams b.N messages from one goroutine to another
// through a Pipe, beside BenchmarkChanSPSC, the same through a buffered
// Go channel of arrays (a copy in, a copy out, like the pipe).
func BenchmarkPipeSPSC(b *testing.B) {
	for _, sz := range pipeBenchSizes {
		b.Run(sz.name, func(b *testing.B) {
			a, c, _ := pipeTestPair(b, &PipeOptions{Capacity: sz.capa, OneWay: false})
			b.ReportAllocs()
			b.SetBytes(int64(sz.size))
			done := make(chan error, 1)
			n := b.N
			go func() {
				msg := make([]byte, sz.size)
				for i := range n {
					binary.LittleEndian.PutUint64(msg, uint64(i))
					if err := a.Send(context.Background(), msg); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			buf := make([]byte, sz.size)
			for i := range n {
				k, err := c.Recv(context.Background(), buf)
				if err != nil || k != sz.size || binary.LittleEndian.Uint64(buf) != uint64(i) {
					b.Fatalf("message %d: %d bytes, %v", i, k, err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPipeLarge streams messages longer than the ring, sent in
// pieces, from one goroutine to another: 1 MiB messages through 64 KiB
// rings, received into a buffer (Recv) or a new slice (RecvBytes).
func BenchmarkPipeLarge(b *testing.B) {
	for _, recv := range []string{"Recv", "RecvBytes"} {
		b.Run("1MiB/"+recv, func(b *testing.B) {
			const size = 1 << 20
			a, c, _ := pipeTestPair(b, &PipeOptions{Capacity: 64 << 10})
			b.ReportAllocs()
			b.SetBytes(size)
			done := make(chan error, 1)
			n := b.N
			go func() {
				msg := make([]byte, size)
				for i := range n {
					binary.LittleEndian.PutUint64(msg, uint64(i))
					if err := a.Send(context.Background(), msg); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			buf := make([]byte, size)
			for i := range n {
				m := buf
				var err error
				if recv == "Recv" {
					var k int
					k, err = c.Recv(context.Background(), buf)
					m = buf[:k]
				} else {
					m, err = c.RecvBytes(context.Background())
				}
				if err != nil || len(m) != size || binary.LittleEndian.Uint64(m) != uint64(i) {
					b.Fatalf("message %d: %d bytes, %v", i, len(m), err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkChanSPSC(b *testing.B) {
	b.Run("64B", func(b *testing.B) {
		benchChanSPSC(b, 1024, func(m *[64]byte) []byte { return m[:] })
	})
	b.Run("4KiB", func(b *testing.B) {
		benchChanSPSC(b, 1024, func(m *[4096]byte) []byte { return m[:] })
	})
}

func benchChanSPSC[T any](b *testing.B, slots int, bytes func(*T) []byte) {
	ch := make(chan T, slots)
	b.ReportAllocs()
	var x T
	b.SetBytes(int64(len(bytes(&x))))
	n := b.N
	go func() {
		var m T
		for i := range n {
			binary.LittleEndian.PutUint64(bytes(&m), uint64(i))
			ch <- m
		}
	}()
	var m T
	for i := range n {
		m = <-ch
		if binary.LittleEndian.Uint64(bytes(&m)) != uint64(i) {
			b.Fatalf("message %d out of order", i)
		}
	}
}

// BenchmarkPipeCrossProcess is workload W6 of ../shared/anchors with a
// Pipe: a producer and a consumer process, both children of the
// benchmark; they signal ready, start together on a futex word, stamp
// CLOCK_MONOTONIC around their loops, and elapsed = max(end) - min(start).
// Every message carries its index in its first and last 8 bytes; the
// consumer checks order, size and count. b.N is the message count, so run
// it once with, for example, -benchtime 20000000x.
func BenchmarkPipeCrossProcess(b *testing.B) {
	for _, sz := range pipeBenchSizes {
		b.Run(sz.name, func(b *testing.B) {
			opts := &PipeOptions{Capacity: sz.capa, OneWay: true}
			mem, path := pipeTestFile(b, 64+PipeSizeOf(opts))
			c, err := InitPipe(mem[64:], pipeRegOpts(b, opts, path))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Detach(); err != nil { // end 0 goes to the consumer child
				b.Fatal(err)
			}
			n, size := strconv.Itoa(b.N), strconv.Itoa(sz.size)
			cons := proctest.Start(b, "pipe-bench", path, "recv", n, size)
			prod := proctest.Start(b, "pipe-bench", path, "send", n, size)
			cons.Expect(proctest.Ready, 0)
			prod.Expect(proctest.Ready, 0)
			start := (*uint32)(unsafe.Pointer(&mem[0]))
			atomic.StoreUint32(start, 1)
			futex.WakeAll(start)
			var t0, t1 [2]int64
			var allocs, wakes [2]uint64
			for i, ch := range []*proctest.Child{cons, prod} {
				lines := strings.Split(strings.TrimSpace(ch.WaitOK()), "\n")
				out := strings.Fields(lines[len(lines)-1])
				if len(out) != 5 || out[0] != "done" {
					b.Fatalf("child output %q", out)
				}
				t0[i], _ = strconv.ParseInt(out[1], 10, 64)
				t1[i], _ = strconv.ParseInt(out[2], 10, 64)
				allocs[i], _ = strconv.ParseUint(out[3], 10, 64)
				wakes[i], _ = strconv.ParseUint(out[4], 10, 64)
			}
			elapsed := float64(max(t1[0], t1[1]) - min(t0[0], t0[1]))
			b.ReportMetric(elapsed/float64(b.N), "ns/op")
			b.ReportMetric(float64(b.N)/elapsed*1e9, "msgs/s")
			b.ReportMetric(float64(b.N)*float64(sz.size)/elapsed*1e3, "MB/s")
			b.ReportMetric(float64(allocs[0]+allocs[1])/float64(b.N), "child-allocs/op")
			b.ReportMetric(float64(wakes[0]+wakes[1])/float64(b.N), "wakes/op")
		})
	}
}

func pipeMonoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// pipeRoleBench: PATH send|recv N SIZE — one side of BenchmarkPipeCrossProcess.
// It prints "ready", waits for the start word, and prints
// "done START END MALLOCS WAKES" (futex wake calls this side made).
func pipeRoleBench(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[2])
	size, _ := strconv.Atoi(args[3])
	end := 1
	if args[1] == "recv" {
		end = 0
	}
	c, err := AttachPipe(mem[64:], end, pipeChildOpts(args[0]))
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	proctest.SignalReady()
	start := (*uint32)(unsafe.Pointer(&mem[0]))
	for atomic.LoadUint32(start) == 0 {
		futex.Wait(context.Background(), start, 0, time.Time{})
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 := pipeMonoNow()
	if end == 1 {
		for i := range n {
			binary.LittleEndian.PutUint64(buf, uint64(i))
			binary.LittleEndian.PutUint64(buf[size-8:], uint64(i))
			if err := c.Send(context.Background(), buf); err != nil {
				return err
			}
		}
	} else {
		for i := range n {
			k, err := c.Recv(context.Background(), buf)
			if err != nil {
				return err
			}
			if k != size || binary.LittleEndian.Uint64(buf) != uint64(i) || binary.LittleEndian.Uint64(buf[size-8:]) != uint64(i) {
				return fmt.Errorf("message %d: %d bytes, index %d", i, k, binary.LittleEndian.Uint64(buf))
			}
		}
	}
	t1 := pipeMonoNow()
	runtime.ReadMemStats(&ms1)
	fmt.Println("done", t0, t1, ms1.Mallocs-ms0.Mallocs, c.State().Wakes)
	return c.Close()
}
