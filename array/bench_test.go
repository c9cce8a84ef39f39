//go:build linux

package array

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

const benchLen = 1 << 20 // 8 MiB of float64, as in the W9 anchor

func benchArray(b *testing.B) *Array[float64] {
	size, _ := SizeOf[float64](benchLen)
	a, err := Init[float64](anon(b, size), benchLen, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	a.CopyIn(make([]float64, benchLen), 0) // fault the pages in
	return a
}

// BenchmarkCopyIn and BenchmarkCopyOut copy 1<<20 float64 in and out of
// an Array; BenchmarkCopyPlain is the same copy between two ordinary
// slices, the peer.
func BenchmarkCopyIn(b *testing.B) {
	a := benchArray(b)
	src := make([]float64, benchLen)
	b.ReportAllocs()
	b.SetBytes(benchLen * 8)
	for b.Loop() {
		a.CopyIn(src, 0)
	}
}

func BenchmarkCopyOut(b *testing.B) {
	a := benchArray(b)
	dst := make([]float64, benchLen)
	b.ReportAllocs()
	b.SetBytes(benchLen * 8)
	for b.Loop() {
		a.CopyOut(dst, 0)
	}
}

func BenchmarkCopyPlain(b *testing.B) {
	src, dst := make([]float64, benchLen), make([]float64, benchLen)
	copy(dst, src) // fault the pages in
	b.ReportAllocs()
	b.SetBytes(benchLen * 8)
	for b.Loop() {
		copy(dst, src)
	}
}

func BenchmarkAt(b *testing.B) {
	a := newArray[int64](b, 16, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		a.At(3)
	}
}

// BenchmarkSetUncontended, BenchmarkSetSliceUncontended and
// BenchmarkUpdateUncontended: the element methods' fast path, the lock
// free (one element, or four through a slice assignment or Update).
func BenchmarkSetUncontended(b *testing.B) {
	a := newArray[int64](b, 16, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		a.Set(3, 1)
	}
}

func BenchmarkSetSliceUncontended(b *testing.B) {
	a := newArray[int64](b, 16, nil, nil)
	src := []int64{1, 2, 3, 4}
	b.ReportAllocs()
	for b.Loop() {
		a.SetSlice(4, 8, src)
	}
}

func BenchmarkUpdateUncontended(b *testing.B) {
	a := newArray[int64](b, 16, nil, nil)
	fn := func(s []int64) { s[0]++ }
	b.ReportAllocs()
	for b.Loop() {
		a.Update(4, 8, fn)
	}
}

// ---- W9: cross-process write-then-read bandwidth ----
//
// The file holds a turn word at offset 0 (even: the writer's turn, odd:
// the reader's) and an Array[float64] of 1<<20 elements at 4096. Round r:
// the writer child sets a[i] = i+r under the lock, hands over; this
// process sums a under the lock with 4 accumulators and checks the exact
// sum, hands back. Only the passes are timed, as in the anchor.

func turnWord(mem []byte) *uint32 { return (*uint32)(unsafe.Pointer(&mem[0])) }

func waitTurn(w *uint32, want uint32) {
	for {
		v := atomic.LoadUint32(w)
		if v == want {
			return
		}
		futex.Wait(context.Background(), w, v, time.Time{})
	}
}

func giveTurn(w *uint32, v uint32) {
	atomic.StoreUint32(w, v)
	futex.Wake(w, 1)
}

// roleW9Writer: PATH ROUNDS — prints the nanoseconds spent writing.
func roleW9Writer(args []string) error {
	mem, err := mapPath(args[0])
	if err != nil {
		return err
	}
	rounds, _ := strconv.Atoi(args[1])
	a, err := Attach[float64](mem[4096:], nil)
	if err != nil {
		return err
	}
	turn := turnWord(mem)
	proctest.SignalReady()
	var ns int64
	for r := range rounds {
		waitTurn(turn, uint32(2*r))
		t0 := time.Now()
		a.Update(0, a.Len(), func(s []float64) {
			for i := range s {
				s[i] = float64(i + r)
			}
		})
		ns += int64(time.Since(t0))
		giveTurn(turn, uint32(2*r+1))
	}
	fmt.Println(ns)
	return nil
}

func sum4(s []float64) float64 {
	var s0, s1, s2, s3 float64
	for i := 0; i+3 < len(s); i += 4 {
		s0 += s[i]
		s1 += s[i+1]
		s2 += s[i+2]
		s3 += s[i+3]
	}
	return (s0 + s1) + (s2 + s3)
}

// BenchmarkW9 is the anchor suite's W9 workload with a Go Array: one
// writer process, one reader process, 8 MiB per pass. Compare with
// BenchmarkW9CPlain from the same run.
func BenchmarkW9(b *testing.B) {
	size, _ := SizeOf[float64](benchLen)
	mem, path := mapFile(b, 4096+size)
	a, err := Init[float64](mem[4096:], benchLen, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	turn := turnWord(mem)
	rounds := b.N
	c := proctest.Start(b, "w9writer", path, strconv.Itoa(rounds))
	c.Expect(proctest.Ready, 0)
	var rns int64
	b.ResetTimer()
	for r := range rounds {
		waitTurn(turn, uint32(2*r+1))
		t0 := time.Now()
		var s float64
		a.Update(0, a.Len(), func(v []float64) { s = sum4(v) })
		rns += int64(time.Since(t0))
		if want := float64(benchLen)*(benchLen-1)/2 + float64(r)*benchLen; s != want {
			b.Fatalf("round %d: sum %v, want %v", r, s, want)
		}
		giveTurn(turn, uint32(2*r+2))
	}
	b.StopTimer()
	wns, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(c.WaitOK(), proctest.Ready+"\n")), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	bytes := float64(benchLen*8) * float64(rounds)
	b.ReportMetric(bytes/float64(wns), "write_GBps")
	b.ReportMetric(bytes/float64(rns), "read_GBps")
	b.ReportMetric(bytes/float64(wns+rns), "GBps")
}

// BenchmarkW9CPlain builds and runs the anchor's C program (gcc -O2, as
// run.sh does) for as many rounds, so that both figures come from the same
// run. It is skipped when gcc or the anchor source is missing.
func BenchmarkW9CPlain(b *testing.B) {
	src := os.Getenv("MPIPC_ANCHORS")
	if src == "" {
		src = "/work/shared/anchors"
	}
	src = filepath.Join(src, "c", "w9_array.c")
	if _, err := os.Stat(src); err != nil {
		b.Skip("anchor source not found: ", err)
	}
	bin := filepath.Join(b.TempDir(), "w9_array")
	if out, err := exec.Command("gcc", "-D_GNU_SOURCE", "-O2", "-pthread", "-o", bin, src, "-lrt").CombinedOutput(); err != nil {
		b.Skipf("gcc: %v\n%s", err, out)
	}
	b.ResetTimer()
	out, err := exec.Command(bin, "c-plain", strconv.Itoa(b.N)).Output()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var r struct {
			Metric string
			Value  float64
		}
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			b.ReportMetric(r.Value, r.Metric)
		}
	}
}
