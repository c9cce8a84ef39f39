package bench

import (
	"context"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/lock"
)

// W4 mpipc-condition: one Condition bound to a Lock and a shared turn
// counter, as c-pthread-cond: each worker holds the lock for its whole
// loop except while waiting; worker 0 sets turn = 2i+1, notifies and waits
// until turn == 2i+2; worker 1 waits until turn == 2i+1, sets 2i+2 and
// notifies. Check: turn == 2n.
func init() {
	const cond = lock.Size // the Condition follows its Lock; the turn counter follows it
	condSize := (condition.SizeOf(0) + 63) &^ 63
	turnOff := lock.Size + condSize
	attach := func(mem []byte) (*condition.Condition, *int64, error) {
		l, err := lock.Attach(mem[:lock.Size], nil)
		if err != nil {
			return nil, nil, err
		}
		c, err := condition.Attach(mem[cond:cond+condSize], l, nil)
		if err != nil {
			return nil, nil, err
		}
		return c, i64at(mem, turnOff), nil
	}
	addProc(procCase{
		Workload: "W4", System: "mpipc-condition", BaseN: 50_000, Procs: 2,
		Size: turnOff + 64,
		Init: func(mem []byte) error {
			l, err := lock.Init(mem[:lock.Size], nil)
			if err != nil {
				return err
			}
			_, err = condition.Init(mem[cond:cond+condSize], l, nil)
			return err
		},
		Worker: func(w *Worker) (func() error, error) {
			c, t, err := attach(w.Objects())
			if err != nil {
				return nil, err
			}
			return func() error {
				if err := c.Acquire(context.Background()); err != nil {
					return err
				}
				for i := int64(0); i < w.N; i++ {
					mine, theirs := 2*i+1, 2*i+2
					if w.Idx == 1 {
						mine, theirs = theirs, mine
						for *t != theirs {
							if err := c.Wait(context.Background()); err != nil {
								return err
							}
						}
						*t = mine
						if err := c.Notify(1); err != nil {
							return err
						}
						continue
					}
					*t = mine
					if err := c.Notify(1); err != nil {
						return err
					}
					for *t != theirs {
						if err := c.Wait(context.Background()); err != nil {
							return err
						}
					}
				}
				return c.Release()
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			if got := *i64at(sh.objects(), turnOff); got != 2*n {
				return mismatch("turn %d != %d", got, 2*n)
			}
			return nil
		},
		Metrics: roundtrips,
	})
}
