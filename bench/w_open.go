package bench

import (
	"fmt"
	"os"

	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// W12-K: Open of one named object in a segment holding K objects (K = 10,
// 1000, 10000), one process; ns_per_open. How the cost of finding a name
// grows with the directory.
//
// The worker creates a segment with a directory of K entries and K
// Value[int64] objects "o00000" … each holding its own index (untimed; the
// file is removed at once, the mapping stays), then opens n objects in a
// fixed order that visits every name (index i·7919 mod K: 7919 is prime to
// every K here), so the figure is the average over the directory, not its
// best or worst entry. Each opened Value must hold its index; the number
// of correct opens is result word 0. Check: it is exactly n.
const w12Stride = 7919

func init() {
	for _, k := range []int{10, 1000, 10000} {
		// n for about a second here with a linear directory scan.
		n := int64(300_000)
		switch k {
		case 1000:
			n = 100_000
		case 10000:
			n = 10_000
		}
		addProc(procCase{
			Workload: fmt.Sprintf("W12-%d", k), System: "mpipc-value", BaseN: n, Procs: 1,
			Worker: func(w *Worker) (func() error, error) {
				seg, names, err := w12Segment(k)
				if err != nil {
					return nil, err
				}
				return func() error {
					var good uint64
					for i := int64(0); i < w.N; i++ {
						j := int((i * w12Stride) % int64(k))
						v, err := value.Open[int64](seg, names[j], nil)
						if err != nil {
							return err
						}
						if got := v.Load(); got != int64(j) {
							return mismatch("Open(%q) gave the object holding %d", names[j], got)
						}
						good++
					}
					*w.Result(0) = good
					return seg.Close()
				}, nil
			},
			Check: func(sh *shared, n int64) error {
				if got := *sh.result(0); got != uint64(n) {
					return mismatch("%d correct opens of %d", got, n)
				}
				return nil
			},
			Metrics: nsPerOp("ns_per_open"),
		})
	}
}

// w12Segment creates an unlinked segment holding k Value[int64] objects
// and returns it with their names.
func w12Segment(k int) (*shm.Segment, []string, error) {
	name := fmt.Sprintf("mpipc-bench-open-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{MaxObjects: k, Size: int64(k)*256 + 4<<20})
	if err != nil {
		return nil, nil, err
	}
	if err := shm.Remove(name, nil); err != nil {
		seg.Close()
		return nil, nil, err
	}
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("o%05d", i)
		if _, err := value.Create(seg, names[i], int64(i), nil); err != nil {
			seg.Close()
			return nil, nil, err
		}
	}
	return seg, names, nil
}
