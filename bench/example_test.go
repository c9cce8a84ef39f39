//go:build linux

package bench_test

import (
	"fmt"
	"os"

	"github.com/mpipc/mpipc/bench"
)

// Comparing figures: the ratio is above 1 when mpipc is better, whether the
// metric is a rate or a time.
func ExampleRatio() {
	fmt.Printf("%.1f\n", bench.Ratio("msgs_per_s", 20e6, 5e6)) // 4× the messages
	fmt.Printf("%.1f\n", bench.Ratio("median_us", 0.5, 2.0))   // a quarter of the latency
	fmt.Printf("%.1f\n", bench.Ratio("ns_per_op", 20, 10))     // twice the time
	// Output:
	// 4.0
	// 4.0
	// 0.5
}

// A table from figures (normally from bench.Run, here made up).
func ExampleWriteTable() {
	sums := []bench.Summary{
		{Result: bench.Result{Workload: "W1", System: "mpipc-lock", Metric: "ns_per_op", Value: 12, N: 1000, Procs: 1},
			Runs: []float64{11, 12, 13}, Min: 11, Max: 13},
		{Result: bench.Result{Workload: "W1", System: "go-sync-mutex", Metric: "ns_per_op", Value: 10, N: 1000, Procs: 1},
			Runs: []float64{10}, Min: 10, Max: 10},
	}
	bench.WriteTable(os.Stdout, sums, nil)
	// Output:
	// workload  metric     ours        median      min–max  runs  peer           peer median  ratio
	// W1        ns_per_op  mpipc-lock   12.00  11.00–13.00     3  go-sync-mutex        10.00  0.83×
	// ratio: how many times better mpipc is than the peer (>1: mpipc faster), on medians.
}
