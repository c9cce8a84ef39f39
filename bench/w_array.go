package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/futex"
)

// W9: 1<<20 float64s (8 MiB) in shared memory. Round r: worker 0 writes
// a[i] = i + r for all i and hands over (a futex turn word, as in C);
// worker 1 sums them with 4 accumulators, checks the exact sum and hands
// back. Only the write and read passes are timed (result words 0 and 1, ns).
//
//	mpipc-array     Array[float64], each pass in Update (under its lock, on
//	                the shared memory itself)
//	mpipc-rawarray  RawArray[float64], each pass on View()
const w9Len = 1 << 20

func w9Turn(turn *uint32, want uint32) {
	for {
		v := atomic.LoadUint32(turn)
		if v == want {
			return
		}
		futex.Wait(context.Background(), turn, v, time.Time{})
	}
}

func w9Give(turn *uint32, v uint32) {
	atomic.StoreUint32(turn, v)
	futex.Wake(turn, 1)
}

// w9Write and w9Sum are written for Go's compiler, which neither unrolls
// nor vectorizes: four elements per iteration, on a subslice of length
// four so that its bounds are checked once. They store the same values
// and add the same four sums in the same order as the C anchor's plain
// loops, which gcc -O2 compiles to scalar stores and packed adds. Written
// one element per iteration, the write pass ran at 11 GB/s in some
// batches of runs and 16 in others (the C anchor at 17-19 in both),
// whether on the Array, the RawArray or a Go heap slice; unrolled, at
// 16-18 in both.
func w9Write(a []float64, r int64) {
	x := r
	for ; len(a) >= 4; a = a[4:] {
		b := a[:4:4]
		b[0] = float64(x)
		b[1] = float64(x + 1)
		b[2] = float64(x + 2)
		b[3] = float64(x + 3)
		x += 4
	}
	for i := range a {
		a[i] = float64(x + int64(i))
	}
}

func w9Sum(a []float64) float64 {
	var s0, s1, s2, s3 float64
	for ; len(a) >= 4; a = a[4:] {
		b := a[:4:4]
		s0 += b[0]
		s1 += b[1]
		s2 += b[2]
		s3 += b[3]
	}
	return (s0 + s1) + (s2 + s3)
}

// w9Loop runs W9's rounds; pass runs fn on the whole array.
func w9Loop(w *Worker, pass func(fn func([]float64)) error) error {
	turn := w.Turn()
	var ns time.Duration
	for r := int64(0); r < w.N; r++ {
		if w.Idx == 0 {
			w9Turn(turn, uint32(2*r))
			t0 := time.Now()
			if err := pass(func(a []float64) { w9Write(a, r) }); err != nil {
				return err
			}
			ns += time.Since(t0)
			w9Give(turn, uint32(2*r+1))
		} else {
			w9Turn(turn, uint32(2*r+1))
			var s float64
			t0 := time.Now()
			if err := pass(func(a []float64) { s = w9Sum(a) }); err != nil {
				return err
			}
			ns += time.Since(t0)
			if want := float64(w9Len)*(w9Len-1)/2 + float64(r)*w9Len; s != want {
				return mismatch("SUM %.1f != %.1f in round %d", s, want, r)
			}
			w9Give(turn, uint32(2*r+2))
		}
	}
	*w.Result(w.Idx) = uint64(ns.Nanoseconds())
	return nil
}

func w9Metrics(el time.Duration, n int64, sh *shared) []Result {
	bytes := float64(w9Len) * 8 * float64(n)
	wns, rns := float64(*sh.result(0)), float64(*sh.result(1))
	return []Result{
		{Metric: "write_GBps", Value: bytes / wns, N: n},
		{Metric: "read_GBps", Value: bytes / rns, N: n},
		{Metric: "GBps", Value: bytes / (wns + rns), N: n},
	}
}

func w9Check(sh *shared, n int64) error {
	if got := atomic.LoadUint32(sh.u32(offTurn)); got != uint32(2*n) {
		return mismatch("turn %d != %d", got, 2*n)
	}
	return nil
}

func init() {
	size, err := array.SizeOf[float64](w9Len)
	if err != nil {
		panic("bench: " + err.Error())
	}
	addProc(procCase{
		Workload: "W9", System: "mpipc-array", BaseN: 300, Procs: 2,
		Size: size,
		Init: func(mem []byte) error { _, err := array.Init[float64](mem[:size], w9Len, nil, nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			a, err := array.Attach[float64](w.Objects()[:size], nil)
			if err != nil {
				return nil, err
			}
			return func() error {
				return w9Loop(w, func(fn func([]float64)) error { return a.Update(0, w9Len, fn) })
			}, nil
		},
		Check:   w9Check,
		Metrics: w9Metrics,
	})

	rsize := size // a RawArray takes what an Array does; InitRaw checks it
	addProc(procCase{
		Workload: "W9", System: "mpipc-rawarray", BaseN: 300, Procs: 2,
		Size: rsize,
		Init: func(mem []byte) error { _, err := array.InitRaw[float64](mem[:rsize], w9Len, nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			a, err := array.AttachRaw[float64](w.Objects()[:rsize])
			if err != nil {
				return nil, err
			}
			v := a.View()
			return func() error {
				return w9Loop(w, func(fn func([]float64)) error { fn(v); return nil })
			}, nil
		},
		Check:   w9Check,
		Metrics: w9Metrics,
	})
}
