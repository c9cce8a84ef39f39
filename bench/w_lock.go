package bench

import (
	"context"
	"fmt"

	"github.com/mpipc/mpipc/lock"
)

// W1: one process, uncontended Acquire+Release loop (n/10 warm-up rounds
// first, as the C anchor does); ns/op. Check: loop count, lock free at the
// end.
//
// W2: two processes each add 1 to a shared int64 n times under the Lock;
// total ops/s. Check: the count is exactly 2n. W2-8p: the same with 8
// processes (oversubscribed on a small machine), count exactly 8n.
func init() {
	addProc(procCase{
		Workload: "W1", System: "mpipc-lock", BaseN: 50_000_000, Procs: 1,
		Size: lock.Size,
		Init: func(mem []byte) error { _, err := lock.Init(mem[:lock.Size], nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			l, err := lock.Attach(w.Objects()[:lock.Size], nil)
			if err != nil {
				return nil, err
			}
			for i := int64(0); i < w.N/10; i++ {
				l.Acquire(context.Background())
				l.Release()
			}
			return func() error {
				var done int64
				for i := int64(0); i < w.N; i++ {
					if err := l.Acquire(context.Background()); err != nil {
						return err
					}
					if err := l.Release(); err != nil {
						return err
					}
					done++
				}
				*w.Result(0) = uint64(done)
				return nil
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			if got := *sh.result(0); got != uint64(n) {
				return mismatch("loop count %d != %d", got, n)
			}
			l, err := lock.Attach(sh.objects()[:lock.Size], nil)
			if err != nil {
				return err
			}
			if l.Held() {
				return mismatch("lock left held")
			}
			return nil
		},
		Metrics: nsPerOp("ns_per_op"),
	})

	// W2 and W2-8p: k processes each add 1 to the count n times.
	const counter = lock.Size // the count sits on its own cache line after the lock
	for _, k := range []int{2, 8} {
		wl := "W2"
		if k != 2 {
			wl = fmt.Sprintf("W2-%dp", k)
		}
		addProc(procCase{
			Workload: wl, System: "mpipc-lock", BaseN: 20_000_000 / int64(k), Procs: k,
			Size: lock.Size + 64,
			Init: func(mem []byte) error { _, err := lock.Init(mem[:lock.Size], nil); return err },
			Worker: func(w *Worker) (func() error, error) {
				mem := w.Objects()
				l, err := lock.Attach(mem[:lock.Size], nil)
				if err != nil {
					return nil, err
				}
				c := i64at(mem, counter)
				return func() error {
					for i := int64(0); i < w.N; i++ {
						if err := l.Acquire(context.Background()); err != nil {
							return err
						}
						*c++
						if err := l.Release(); err != nil {
							return err
						}
					}
					return nil
				}, nil
			},
			Check: func(sh *shared, n int64) error {
				if got := *i64at(sh.objects(), counter); got != int64(k)*n {
					return mismatch("count %d != %d", got, int64(k)*n)
				}
				return nil
			},
			Metrics: opsPerSec(int64(k)),
		})
	}
}
