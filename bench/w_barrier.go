package bench

import (
	"context"
	"time"

	"github.com/mpipc/mpipc/barrier"
)

// W5 mpipc-barrier: two processes do n rounds of a Barrier(2); each
// publishes its round before the barrier and checks after it that the peer
// has reached the same round (as c-pthread-barrier). Check: both published
// n-1 last and the barrier released n rounds.
func init() {
	size := (barrier.SizeOf(2, 0) + 63) &^ 63
	addProc(procCase{
		Workload: "W5", System: "mpipc-barrier", BaseN: 100_000, Procs: 2,
		Size: size + 64,
		Init: func(mem []byte) error {
			b, err := barrier.Init(mem[:size], 2, nil)
			if err != nil {
				return err
			}
			return b.Close() // the parent does not take part
		},
		Worker: func(w *Worker) (func() error, error) {
			mem := w.Objects()
			b, err := barrier.Attach(mem[:size], nil)
			if err != nil {
				return nil, err
			}
			mine, theirs := i64at(mem, size+8*w.Idx), i64at(mem, size+8*(1-w.Idx))
			return func() error {
				for r := int64(0); r < w.N; r++ {
					storeInt64(mine, r)
					if _, err := b.Wait(context.Background()); err != nil {
						return err
					}
					if o := loadInt64(theirs); o < r || o > r+1 {
						return mismatch("round %d: peer at round %d", r, o)
					}
				}
				return b.Close()
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			mem := sh.objects()
			a, b := loadInt64(i64at(mem, size)), loadInt64(i64at(mem, size+8))
			br, err := barrier.Attach(mem[:size], &barrier.Options{Observe: true})
			if err != nil {
				return err
			}
			defer br.Close()
			if st := br.State(); a != n-1 || b != n-1 || st.Rounds != uint64(n) || st.Broken {
				return mismatch("rounds published %d and %d, barrier released %d (broken %v), want %d", a, b, st.Rounds, st.Broken, n)
			}
			return nil
		},
		Metrics: func(el time.Duration, n int64, _ *shared) []Result {
			return []Result{{Metric: "rounds_per_s", Value: float64(n) / el.Seconds(), N: n}}
		},
	})
}
