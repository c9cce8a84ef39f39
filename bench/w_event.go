package bench

import (
	"context"
	"github.com/mpipc/mpipc/event"
)

// W4 mpipc-event: ping-pong on two Events, as py-mp-event does: worker 0
// sets e1 and waits for e2 (then clears it and checks the round worker 1
// published); worker 1 waits for e1, clears it, publishes its round and sets
// e2. Check: worker 1's round count is n and both events are clear.
func init() {
	const e2, rounds = event.Size, 2 * event.Size
	addProc(procCase{
		Workload: "W4", System: "mpipc-event", BaseN: 100_000, Procs: 2,
		Size: 3 * event.Size,
		Init: func(mem []byte) error {
			if _, err := event.Init(mem[:e2], nil); err != nil {
				return err
			}
			_, err := event.Init(mem[e2:rounds], nil)
			return err
		},
		Worker: func(w *Worker) (func() error, error) {
			mem := w.Objects()
			a, err := event.Attach(mem[:e2], nil)
			if err != nil {
				return nil, err
			}
			b, err := event.Attach(mem[e2:rounds], nil)
			if err != nil {
				return nil, err
			}
			r := i64at(mem, rounds)
			return func() error {
				for i := int64(0); i < w.N; i++ {
					if w.Idx == 0 {
						a.Set()
						if err := b.Wait(context.Background()); err != nil {
							return err
						}
						b.Clear()
						if got := loadInt64(r); got != i+1 {
							return mismatch("round %d: peer published %d", i, got)
						}
					} else {
						if err := a.Wait(context.Background()); err != nil {
							return err
						}
						a.Clear()
						storeInt64(r, i+1)
						b.Set()
					}
				}
				return nil
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			mem := sh.objects()
			a, err := event.Attach(mem[:e2], nil)
			if err != nil {
				return err
			}
			b, err := event.Attach(mem[e2:rounds], nil)
			if err != nil {
				return err
			}
			if got := loadInt64(i64at(mem, rounds)); got != n || a.IsSet() || b.IsSet() {
				return mismatch("rounds %d/%d, e1 set %v, e2 set %v", got, n, a.IsSet(), b.IsSet())
			}
			return nil
		},
		Metrics: roundtrips,
	})
}
