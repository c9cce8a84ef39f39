//go:build linux

package pool_test

import (
	"context"
	"testing"

	"github.com/mpipc/mpipc/pool"
)

// The benchmarks are anchors workload W11 (../shared/anchors): 2 workers,
// f(x) = x*x + 1 over 0..N-1, results in task order; the pool is started
// and warmed up with 4 tasks before the clock runs. One op is one task:
// ns/op is the parent's time per task, from the first submit to the last
// result.

func benchPool(b *testing.B) *pool.Pool {
	p, err := pool.New(context.Background(), 2, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Terminate() })
	if _, err := pool.Map(context.Background(), p, square, tasks(4), &pool.MapOptions{ChunkSize: 1}); err != nil {
		b.Fatal(err)
	}
	return p
}

func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func benchMap(b *testing.B, chunk int) {
	p := benchPool(b)
	ts := tasks(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	got, err := pool.Map(context.Background(), p, square, ts, &pool.MapOptions{ChunkSize: chunk})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	checkSquares(b, got, b.N)
	report(b)
}

// BenchmarkMap is Pool.map with the default chunk size (N / 8, capped by
// the message size: 336 int64 tasks).
func BenchmarkMap(b *testing.B) { benchMap(b, 0) }

// BenchmarkMapChunk1 is Pool.map(chunksize=1): per-task dispatch.
func BenchmarkMapChunk1(b *testing.B) { benchMap(b, 1) }

// BenchmarkSubmit is N apply_async calls, then Get on each.
func BenchmarkSubmit(b *testing.B) {
	p := benchPool(b)
	fs := make([]*pool.Future[int64], b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range fs {
		fu, err := pool.Submit(p, square, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		fs[i] = fu
	}
	got := make([]int64, b.N)
	for i, fu := range fs {
		v, err := fu.Get(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		got[i] = v
	}
	b.StopTimer()
	checkSquares(b, got, b.N)
	report(b)
}
