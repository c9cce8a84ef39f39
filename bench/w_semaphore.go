package bench

import (
	"context"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
)

// W1 mpipc-rlock and mpipc-semaphore: the uncontended loop of W1 on an
// RLock (level 1) and on a Semaphore of value 1 (as c-sem does).
//
// W3 mpipc-semaphore: ping-pong on two Semaphores of value 0: worker 0
// releases s1 and acquires s2, worker 1 acquires s1, publishes its round,
// releases s2; worker 0 checks the round. Check: both values 0 at the end
// and worker 1's round count is n.
func init() {
	addProc(procCase{
		Workload: "W1", System: "mpipc-rlock", BaseN: 30_000_000, Procs: 1,
		Size: rlock.Size,
		Init: func(mem []byte) error { _, err := rlock.Init(mem[:rlock.Size], nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			l, err := rlock.Attach(w.Objects()[:rlock.Size], nil)
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
			l, err := rlock.Attach(sh.objects()[:rlock.Size], nil)
			if err != nil {
				return err
			}
			if l.State().Held {
				return mismatch("rlock left held")
			}
			return nil
		},
		Metrics: nsPerOp("ns_per_op"),
	})

	addProc(procCase{
		Workload: "W1", System: "mpipc-semaphore", BaseN: 50_000_000, Procs: 1,
		Size: semaphore.Size,
		Init: func(mem []byte) error { _, err := semaphore.Init(mem[:semaphore.Size], 1, nil); return err },
		Worker: func(w *Worker) (func() error, error) {
			s, err := semaphore.Attach(w.Objects()[:semaphore.Size], nil)
			if err != nil {
				return nil, err
			}
			for i := int64(0); i < w.N/10; i++ {
				s.Acquire(context.Background())
				s.Release(1)
			}
			return func() error {
				var done int64
				for i := int64(0); i < w.N; i++ {
					if err := s.Acquire(context.Background()); err != nil {
						return err
					}
					if err := s.Release(1); err != nil {
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
			s, err := semaphore.Attach(sh.objects()[:semaphore.Size], nil)
			if err != nil {
				return err
			}
			if v := s.Value(); v != 1 {
				return mismatch("semaphore value %d != 1", v)
			}
			return nil
		},
		Metrics: nsPerOp("ns_per_op"),
	})

	const s2, roundsB = semaphore.Size, 2 * semaphore.Size
	addProc(procCase{
		Workload: "W3", System: "mpipc-semaphore", BaseN: 300_000, Procs: 2,
		Size: 3 * semaphore.Size,
		Init: func(mem []byte) error {
			if _, err := semaphore.Init(mem[:s2], 0, nil); err != nil {
				return err
			}
			_, err := semaphore.Init(mem[s2:roundsB], 0, nil)
			return err
		},
		Worker: func(w *Worker) (func() error, error) {
			mem := w.Objects()
			a, err := semaphore.Attach(mem[:s2], nil)
			if err != nil {
				return nil, err
			}
			b, err := semaphore.Attach(mem[s2:roundsB], nil)
			if err != nil {
				return nil, err
			}
			rounds := i64at(mem, roundsB)
			return func() error {
				for i := int64(0); i < w.N; i++ {
					if w.Idx == 0 {
						if err := a.Release(1); err != nil {
							return err
						}
						if err := b.Acquire(context.Background()); err != nil {
							return err
						}
						if got := loadInt64(rounds); got != i+1 {
							return mismatch("round %d: peer published %d", i, got)
						}
					} else {
						if err := a.Acquire(context.Background()); err != nil {
							return err
						}
						storeInt64(rounds, i+1)
						if err := b.Release(1); err != nil {
							return err
						}
					}
				}
				return nil
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			mem := sh.objects()
			a, err := semaphore.Attach(mem[:s2], nil)
			if err != nil {
				return err
			}
			b, err := semaphore.Attach(mem[s2:roundsB], nil)
			if err != nil {
				return err
			}
			if r := loadInt64(i64at(mem, roundsB)); r != n || a.Value() != 0 || b.Value() != 0 {
				return mismatch("rounds=%d/%d s1=%d s2=%d", r, n, a.Value(), b.Value())
			}
			return nil
		},
		Metrics: roundtrips,
	})
}
