package bench

import (
	"context"
	"math/big"
	"time"

	"github.com/mpipc/mpipc/pool"
)

// W11: a pool of 2 worker processes runs f(x) = x*x + 1 over 0..N-1,
// results in task order. As in the anchors, the pool is started and warmed
// up with 4 tasks through the same call before the clock starts; the
// parent times itself from the first submit to the last result, and
// checks every result after that.
//
//	mpipc-pool-map         pool.Map, default chunk size (N/8, capped by the
//	                       4 KiB message: 336 tasks)
//	mpipc-pool-map-chunk1  pool.Map with ChunkSize 1: per-task dispatch
//	mpipc-pool-submit      N × pool.Submit, then Get on each (apply_async)
var w11Square = pool.NewFunc("mpipc.bench.w11", func(x int64) (int64, error) { return x*x + 1, nil })

const w11Workers = 2

func init() {
	addW11("mpipc-pool-map", 20_000_000, func(p *pool.Pool, xs []int64) ([]int64, error) {
		return pool.Map(context.Background(), p, w11Square, xs, nil)
	})
	addW11("mpipc-pool-map-chunk1", 1_000_000, func(p *pool.Pool, xs []int64) ([]int64, error) {
		return pool.Map(context.Background(), p, w11Square, xs, &pool.MapOptions{ChunkSize: 1})
	})
	addW11("mpipc-pool-submit", 300_000, func(p *pool.Pool, xs []int64) ([]int64, error) {
		fs := make([]*pool.Future[int64], len(xs))
		for i, x := range xs {
			fu, err := pool.Submit(p, w11Square, x)
			if err != nil {
				return nil, err
			}
			fs[i] = fu
		}
		out := make([]int64, len(xs))
		for i, fu := range fs {
			v, err := fu.Get(context.Background())
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	})
}

func addW11(system string, baseN int64, run func(p *pool.Pool, xs []int64) ([]int64, error)) {
	addCase(&Case{
		Workload: "W11", System: system, BaseN: baseN, Procs: w11Workers,
		run: func(n int64) ([]Result, error) {
			ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
			defer cancel()
			p, err := pool.New(ctx, w11Workers, nil)
			if err != nil {
				return nil, err
			}
			defer p.Terminate()
			if _, err := run(p, []int64{0, 1, 2, 3}); err != nil {
				return nil, err
			}
			xs := make([]int64, n)
			for i := range xs {
				xs[i] = int64(i)
			}
			t0 := time.Now()
			out, err := run(p, xs)
			el := time.Since(t0)
			if err != nil {
				return nil, err
			}
			var sum uint64 // Σ wraps at 2^64, as the closed form below is reduced
			for i, v := range out {
				if v != int64(i)*int64(i)+1 {
					return nil, mismatch("result %d = %d, want %d", i, v, int64(i)*int64(i)+1)
				}
				sum += uint64(v)
			}
			if int64(len(out)) != n || sum != w11Sum(n) {
				return nil, mismatch("%d results summing to %d, want %d summing to %d", len(out), sum, n, w11Sum(n))
			}
			return []Result{
				{Workload: "W11", System: system, Metric: "tasks_per_s", Value: float64(n) / el.Seconds(), N: n, Procs: w11Workers},
				{Workload: "W11", System: system, Metric: "us_per_task", Value: el.Seconds() * 1e6 / float64(n), N: n, Procs: w11Workers},
			}, nil
		},
	})
}

// w11Sum is Σ (i² + 1) for i in 0..n-1, the closed form the anchors
// check, modulo 2^64.
func w11Sum(n int64) uint64 {
	s := new(big.Int).Mul(big.NewInt(n-1), big.NewInt(n))
	s.Mul(s, big.NewInt(2*n-1))
	s.Quo(s, big.NewInt(6))
	s.Add(s, big.NewInt(n))
	return new(big.Int).And(s, new(big.Int).SetUint64(^uint64(0))).Uint64()
}
