package bench

import (
	"github.com/mpipc/mpipc/value"
)

// W2 mpipc-value: W2's counter as a Value[int64], incremented with Add —
// what Python's "with v.get_lock(): v.value += 1" (py-mp-value) is in
// mpipc: one atomic instruction, no lock. Check: the value is exactly 2n.
func init() {
	size, err := value.SizeOf[int64]()
	if err != nil {
		panic("bench: " + err.Error())
	}
	addProc(procCase{
		Workload: "W2", System: "mpipc-value", BaseN: 10_000_000, Procs: 2,
		Size: size,
		Init: func(mem []byte) error { _, err := value.Init[int64](mem[:size], 0, nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			v, err := value.Attach[int64](w.Objects()[:size], nil)
			if err != nil {
				return nil, err
			}
			return func() error {
				for i := int64(0); i < w.N; i++ {
					v.Add(1)
				}
				return nil
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			v, err := value.Attach[int64](sh.objects()[:size], nil)
			if err != nil {
				return err
			}
			if got := v.Load(); got != 2*n {
				return mismatch("count %d != %d", got, 2*n)
			}
			return nil
		},
		Metrics: opsPerSec(2),
	})
}
