package bench

import (
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"
)

// procCase is a case run by runProcs: Procs re-executed workers running
// Worker, set up by Init, checked by Check, reported by Metrics.
type procCase struct {
	Workload, System string
	BaseN            int64
	Procs            int
	Size             int                                                  // bytes of shared objects
	Init             func(mem []byte) error                               // parent, before the workers start
	Files            func() ([]*os.File, error)                           // inherited by every worker
	Worker           workerFunc                                           // each worker: attach, then the timed loop
	Check            func(sh *shared, n int64) error                      // parent, after the workers exited
	Metrics          func(el time.Duration, n int64, sh *shared) []Result // figures, without names
}

func addProc(pc procCase) {
	id := pc.Workload + "/" + pc.System
	registerWorker(id, pc.Worker)
	addCase(&Case{
		Workload: pc.Workload, System: pc.System, BaseN: pc.BaseN, Procs: pc.Procs,
		run: func(n int64) ([]Result, error) {
			var res []Result
			_, err := runProcs(procSpec{
				id: id, procs: pc.Procs, n: n, size: pc.Size,
				init: pc.Init, files: pc.Files,
				check: func(sh *shared, el time.Duration) error {
					if pc.Check != nil {
						if err := pc.Check(sh, n); err != nil {
							return err
						}
					}
					res = pc.Metrics(el, n, sh) // while sh is still mapped
					return nil
				},
			})
			if err != nil {
				return nil, err
			}
			for i := range res {
				res[i].Workload, res[i].System = pc.Workload, pc.System
				if res[i].Procs == 0 {
					res[i].Procs = pc.Procs
				}
			}
			return res, nil
		},
	})
}

// Metric helpers. el is max(end) − min(start) over the workers.

func nsPerOp(metric string) func(time.Duration, int64, *shared) []Result {
	return func(el time.Duration, n int64, _ *shared) []Result {
		return []Result{{Metric: metric, Value: float64(el.Nanoseconds()) / float64(n), N: n}}
	}
}

func roundtrips(el time.Duration, n int64, _ *shared) []Result {
	return []Result{
		{Metric: "roundtrips_per_s", Value: float64(n) / el.Seconds(), N: n},
		{Metric: "ns_per_roundtrip", Value: float64(el.Nanoseconds()) / float64(n), N: n},
	}
}

func throughput(size int) func(time.Duration, int64, *shared) []Result {
	return func(el time.Duration, n int64, _ *shared) []Result {
		return []Result{
			{Metric: "msgs_per_s", Value: float64(n) / el.Seconds(), N: n, MsgBytes: size},
			{Metric: "MB_per_s", Value: float64(n) * float64(size) / el.Seconds() / 1e6, N: n, MsgBytes: size},
		}
	}
}

// i64at returns the shared int64 at off in mem.
func i64at(mem []byte, off int) *int64 { return (*int64)(unsafe.Pointer(&mem[off])) }

// mismatch is the loud failure of a result check.
func mismatch(format string, args ...any) error {
	return fmt.Errorf("RESULT MISMATCH: "+format, args...)
}

// latency returns the median and p99 of samples (ns), sorting them.
func latency(samples []int64) (p50, p99 int64) {
	slices.Sort(samples)
	return samples[len(samples)/2], samples[int(float64(len(samples))*0.99)]
}

// mix64 is splitmix64, for order-independent checksums of message ids (as
// in the C anchors).
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// opsPerSec reports k×n operations (k processes of n each) per second.
func opsPerSec(k int64) func(time.Duration, int64, *shared) []Result {
	return func(el time.Duration, n int64, _ *shared) []Result {
		return []Result{{Metric: "ops_per_s", Value: float64(k*n) / el.Seconds(), N: k * n}}
	}
}

// latencies reports the median and p99 round trip that the client stored
// in result words 0 and 1 (ns).
func latencies(el time.Duration, n int64, sh *shared) []Result {
	return []Result{
		{Metric: "median_us", Value: float64(*sh.result(0)) / 1e3, N: n, MsgBytes: 64},
		{Metric: "p99_us", Value: float64(*sh.result(1)) / 1e3, N: n, MsgBytes: 64},
	}
}

// w7Metrics reports the total messages per second of W7 with the given
// number of producers.
func w7Metrics(producers int) func(time.Duration, int64, *shared) []Result {
	return func(el time.Duration, n int64, _ *shared) []Result {
		n = w7N(n, producers)
		return []Result{{Metric: "msgs_per_s", Value: float64(n) / el.Seconds(), N: n, MsgBytes: 64}}
	}
}

func loadInt64(p *int64) int64     { return atomic.LoadInt64(p) }
func storeInt64(p *int64, v int64) { atomic.StoreInt64(p, v) }
