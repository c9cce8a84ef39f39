package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
)

// WriteBenchstat writes the summaries in the text format of `go test
// -bench`, one line per run of every case, so that two runs of the suite
// can be compared with benchstat:
//
//	goos: linux
//	goarch: amd64
//	pkg: github.com/mpipc/mpipc/bench
//	BenchmarkW6/mpipc-queue-2   10000000   13456789 msgs/s   861.2 MB/s
//
// The name is Benchmark, the workload, "/", the system and, as go test
// writes it, "-GOMAXPROCS"; the iteration count is the run's n; every
// metric of the case follows as "value unit", the unit being the metric's
// name with "_per_" written "/" (ns_per_op is ns/op, msgs_per_s msgs/s).
func WriteBenchstat(w io.Writer, sums []Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ngoarch: %s\npkg: github.com/mpipc/mpipc/bench\n", runtime.GOOS, runtime.GOARCH)
	type group struct {
		name string
		sums []Summary
	}
	var groups []*group
	byName := map[string]*group{}
	for _, s := range sums {
		name := fmt.Sprintf("Benchmark%s/%s-%d", s.Workload, s.System, runtime.GOMAXPROCS(0))
		g := byName[name]
		if g == nil {
			g = &group{name: name}
			byName[name] = g
			groups = append(groups, g)
		}
		g.sums = append(g.sums, s)
	}
	for _, g := range groups {
		runs := 0
		for _, s := range g.sums {
			runs = max(runs, len(s.Runs))
		}
		for i := range runs {
			var line strings.Builder
			n := int64(0)
			for _, s := range g.sums {
				if i >= len(s.Runs) {
					continue
				}
				n = max(n, s.N)
				fmt.Fprintf(&line, "\t%s %s", benchValue(s.Runs[i]), BenchUnit(s.Metric))
			}
			fmt.Fprintf(&b, "%s\t%d%s\n", g.name, max(n, 1), line.String())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// BenchUnit is the unit of metric in the go test -bench format: its name
// with "_per_" written "/" (ns_per_op is ns/op, MB_per_s MB/s).
func BenchUnit(metric string) string { return strings.ReplaceAll(metric, "_per_", "/") }

// benchValue prints v with six significant digits, without an exponent
// for the magnitudes a benchmark has.
func benchValue(v float64) string {
	if max(v, -v) >= 1e6 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.6g", v)
}
