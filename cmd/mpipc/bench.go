package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/mpipc/mpipc/bench"
)

func runBench(c *cli, args []string) int {
	fs := c.flags("bench")
	workloads := fs.String("w", "", "comma-separated workloads to run, e.g. W1,W6 (default all); W6 includes W6-4KiB, =W6 is W6 alone")
	systems := fs.String("s", "", "comma-separated systems to run, e.g. mpipc-queue,go-os-pipe (default all)")
	runs := fs.Int("n", 1, "runs of every case; the table shows the median, min and max")
	format := fs.String("format", "table", "output: table; json (JSON lines, one per workload, system and metric); benchstat (go test -bench lines, one per run, for benchstat)")
	asJSON := fs.Bool("json", false, "short for -format json")
	scale := fs.Float64("scale", 1, "multiply every case's iteration count (0.01 for a smoke run)")
	anchors := fs.String("anchors", "", "merge this results-*.jsonl from the anchors' run.sh as peers in the table")
	quiet := fs.Bool("q", false, "no progress line on stderr")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		return c.usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *runs < 1 {
		return c.usageErr(fs, "-n must be at least 1, not %d", *runs)
	}
	if *scale <= 0 {
		return c.usageErr(fs, "-scale must be above 0, not %g", *scale)
	}
	if *asJSON {
		*format = "json"
	}
	switch *format {
	case "table", "json", "benchstat":
	default:
		return c.usageErr(fs, "-format must be table, json or benchstat, not %q", *format)
	}
	var sel []string
	if *workloads != "" {
		sel = strings.Split(*workloads, ",")
	}
	var sys []string
	if *systems != "" {
		sys = strings.Split(*systems, ",")
	}
	if _, err := bench.SelectSystems(sel, sys); err != nil {
		return c.usageErr(fs, "%v", err)
	}
	var anchorSums []bench.Summary
	if *anchors != "" {
		var err error
		if anchorSums, err = bench.ReadAnchors(*anchors); err != nil {
			return c.fail("bench: %v\n(pass a results-*.jsonl file written by the anchors' run.sh)", err)
		}
	}
	opts := bench.Options{Workloads: sel, Systems: sys, Runs: *runs, Scale: *scale}
	if !*quiet {
		opts.Progress = c.stderr
	}
	sums, err := bench.Run(opts)
	switch *format {
	case "json":
		if werr := bench.WriteJSON(c.stdout, sums); werr != nil {
			return c.fail("bench: writing results: %v", werr)
		}
	case "benchstat":
		if werr := bench.WriteBenchstat(c.stdout, sums); werr != nil {
			return c.fail("bench: writing results: %v", werr)
		}
	default:
		fmt.Fprintf(c.stdout, "mpipc bench: %d run(s) per case, scale %g, %d CPUs, %s/%s\n\n", *runs, *scale, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
		bench.WriteTable(c.stdout, sums, anchorSums)
		fmt.Fprintln(c.stdout, "\npeers measured in this run:")
		bench.WritePeers(c.stdout, sums)
		if *anchors != "" {
			fmt.Fprintf(c.stdout, "\nanchors: %s\n", *anchors)
		}
	}
	if err != nil {
		n := 1
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			n = len(j.Unwrap())
		}
		return c.fail("bench: %d failed run(s), left out of the figures:\n%v", n, err)
	}
	return exitOK
}
