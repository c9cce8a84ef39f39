//go:build linux

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/value"
)

// Condition with its own RLock: producers add items and Notify(1);
// consumers Wait (with a timeout) while there are none and take one. The
// guarded state is items plus each worker's count (slot word 1, written
// under the lock); items = produced - consumed whenever the lock is taken
// normally. A worker killed in between (also inside Wait, holding a waiter
// slot) must surface as ErrOwnerDead at the next acquire or at Wait's
// reacquire, and be repaired. Conservation: the identity holds at every
// pause and at the end.

const gItems = gKindBase + 4

func condSums(w *wctx) (prod, cons uint64) {
	// Workers' slots are written only under the lock; the slots in use
	// are below the harness's next slot, which the parent publishes.
	n := int(ld(w.c.g(gSlots)))
	for s := 0; s < n; s++ {
		switch ld(w.c.s(s, 2)) {
		case 1:
			prod += ld(w.c.s(s, 1))
		case 2:
			cons += ld(w.c.s(s, 1))
		}
	}
	return
}

func condCheck(w *wctx, err error, c *condition.Condition) error {
	prod, cons := condSums(w)
	items := ld(w.c.g(gItems))
	switch {
	case errors.Is(err, condition.ErrOwnerDead):
		inc(w.c.g(gOwnerDead))
		if items != prod-cons {
			inc(w.c.g(gRepairs))
			st(w.c.g(gItems), prod-cons)
		}
		return c.Lock().(interface{ Consistent() error }).Consistent()
	case err != nil:
		return err
	case items != prod-cons:
		w.violation("condition: items=%d produced=%d consumed=%d without ErrOwnerDead", items, prod, cons)
		st(w.c.g(gItems), prod-cons)
	}
	return nil
}

func init() {
	addCrashKind(conditionKind("condition"))
	addCrashKind(conditionKind("condition-lock"))
	addCrashKind(valueKind())
	addCrashKind(arrayKind())
}

// Value: a Value[int64] counter (Add, one atomic instruction) and a wide
// Value[quad] whose four words are always equal (Update, under the lock and
// the writer lock, on a double buffer). A writer killed mid-write must never
// make a Load torn; the next writer takes the locks over, the Update that
// takes the lock over reporting ErrOwnerDead until a worker calls
// Consistent. Conservation:
// each total minus the workers' own counts is in [0, kills].

type quad struct{ A, B, C, D uint64 }

func valueKind() *crashKind {
	return &crashKind{
		name:    "value",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			if _, err := value.Create[int64](h.seg, "n", 0, nil); err != nil {
				h.t.Fatal(err)
			}
			if _, err := value.Create(h.seg, "q", quad{}, nil); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			opts := &value.Options{CheckInterval: crashCheck}
			n, err := value.Open[int64](w.seg, "n", opts)
			if err != nil {
				return err
			}
			q, err := value.Open[quad](w.seg, "q", opts)
			if err != nil {
				return err
			}
			ready()
			for !w.stopped() {
				n.Add(1)
				inc(w.s(1))
				x := q.Load()
				if x.A != x.B || x.B != x.C || x.C != x.D {
					w.violation("torn wide value %+v", x)
				}
				w.blocking(true) // Update may wait for the lock and the writer lock
				_, err := q.Update(func(x *quad) {
					x.A++
					x.B++
					x.C++
					x.D++
				})
				w.blocking(false)
				if errors.Is(err, value.ErrOwnerDead) {
					// A worker died holding the lock: the Update was
					// applied all the same, and the Value, never half
					// written, needs no repair but Consistent (which
					// another worker may have called first).
					inc(w.c.g(gOwnerDead))
					switch cerr := q.Consistent(); {
					case cerr == nil:
						inc(w.c.g(gRepairs))
					case !errors.Is(cerr, value.ErrNotInconsistent):
						return fmt.Errorf("consistent: %w", cerr)
					}
				} else if err != nil {
					return fmt.Errorf("update: %w", err)
				}
				inc(w.s(2))
				w.tick()
			}
			return nil
		},
		check: func(h *harness, final bool) {
			n, err := value.Open[int64](h.seg, "n", nil)
			if err != nil {
				h.t.Fatal(err)
			}
			q, err := value.Open[quad](h.seg, "q", nil)
			if err != nil {
				h.t.Fatal(err)
			}
			got, sum := uint64(n.Load()), h.sumSlots(1)
			if got < sum || got-sum > uint64(h.kills) {
				h.t.Errorf("value: counter %d, adds counted %d, kills %d", got, sum, h.kills)
			}
			x, sum2 := q.Load(), h.sumSlots(2)
			if x.A != x.B || x.B != x.C || x.C != x.D {
				h.t.Errorf("value: torn wide value %+v", x)
			}
			if x.A < sum2 || x.A-sum2 > uint64(h.kills) {
				h.t.Errorf("value: wide updates %d, counted %d, kills %d", x.A, sum2, h.kills)
			}
		},
	}
}

// Array[int64] of 8 elements sharing an RLock (Options.Lock) that workers
// take themselves: holding it, Update increments every element (spinning in
// between). A worker killed mid-Update leaves the elements unequal; the next
// acquirer must get ErrOwnerDead, repair and call Consistent. Elements seen
// unequal after a normal acquire are a violation.

const arrN = 8

func arrayKind() *crashKind {
	return &crashKind{
		name:    "array",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			rl, err := rlock.Create(h.seg, "alock", nil)
			if err != nil {
				h.t.Fatal(err)
			}
			if _, err := array.Create[int64](h.seg, "obj", arrN, nil, &array.Options{Lock: rl}); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			rl, err := rlock.Open(w.seg, "alock", &rlock.Options{CheckInterval: crashCheck})
			if err != nil {
				return err
			}
			a, err := array.Open[int64](w.seg, "obj", &array.Options{Lock: rl})
			if err != nil {
				return err
			}
			ready()
			for !w.stopped() {
				w.blocking(true)
				ok, err := rl.AcquireTimeout(time.Second)
				w.blocking(false)
				if !ok {
					if err != nil {
						return err
					}
					continue
				}
				s := a.Slice(0, arrN)
				mx, eq := s[0], true
				for _, x := range s {
					eq = eq && x == s[0]
					mx = max(mx, x)
				}
				switch {
				case errors.Is(err, rlock.ErrOwnerDead):
					inc(w.c.g(gOwnerDead))
					if !eq {
						inc(w.c.g(gRepairs))
						a.Update(0, arrN, func(e []int64) {
							for i := range e {
								e[i] = mx
							}
						})
					}
					if err := rl.Consistent(); err != nil {
						return err
					}
				case err != nil:
					return err
				case !eq:
					w.violation("array elements unequal without ErrOwnerDead: %v", s)
				}
				if err := a.Update(0, arrN, func(e []int64) {
					for i := range e {
						e[i]++
						for j, n := 0, w.rng.IntN(20); j < n; j++ {
							_ = ld(w.s(0))
						}
					}
				}); err != nil {
					return fmt.Errorf("update: %w", err)
				}
				inc(w.s(1))
				if err := rl.Release(); err != nil {
					return err
				}
				w.tick()
			}
			return nil
		},
		check: func(h *harness, final bool) {
			a, err := array.OpenRaw[int64](h.seg, "obj")
			if err != nil {
				h.t.Fatal(err)
			}
			s, sum := a.Slice(0, arrN), h.sumSlots(1)
			for _, x := range s {
				if uint64(x) < sum || uint64(x)-sum > uint64(h.kills) || (final && x != s[0]) {
					h.t.Errorf("array: elements %v, updates counted %d, kills %d", s, sum, h.kills)
					break
				}
			}
		},
	}
}

// conditionKind is the Condition with its own RLock ("condition") or bound
// to a named Lock ("condition-lock").
func conditionKind(name string) *crashKind {
	return &crashKind{
		name: name,

		workers: []string{"p", "p", "c", "c", "c"},
		setup: func(h *harness) {
			lockName := ""
			if name == "condition-lock" {
				if _, err := lock.Create(h.seg, "clock", nil); err != nil {
					h.t.Fatal(err)
				}
				lockName = "clock"
			}
			if _, err := condition.Create(h.seg, "obj", lockName, &condition.Options{Slots: 16}); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			c, err := condition.Open(w.seg, "obj", &condition.Options{CheckInterval: crashCheck})
			if err != nil {
				return err
			}
			role := uint64(1)
			if w.role == "c" {
				role = 2
			}
			st(w.s(2), role)
			ready()
			for !w.stopped() {
				w.blocking(true)
				err := c.Acquire(context.Background())
				w.blocking(false)
				if err := condCheck(w, err, c); err != nil {
					return fmt.Errorf("acquire: %w", err)
				}
				did := false
				if w.role == "p" {
					if ld(w.c.g(gItems)) < 8 {
						inc(w.s(1))
						for i, n := 0, w.rng.IntN(300); i < n; i++ {
							_ = ld(w.c.g(gItems)) // widen the window
						}
						st(w.c.g(gItems), ld(w.c.g(gItems))+1)
						if err := c.Notify(1); err != nil {
							return fmt.Errorf("notify: %w", err)
						}
						did = true
					}
				} else {
					for ld(w.c.g(gItems)) == 0 && !w.stopped() && ld(w.c.g(gPause)) == 0 {
						w.blocking(true)
						_, err := c.WaitTimeout(20 * time.Millisecond)
						w.blocking(false)
						if err := condCheck(w, err, c); err != nil {
							return fmt.Errorf("wait: %w", err)
						}
					}
					if ld(w.c.g(gItems)) > 0 {
						inc(w.s(1))
						st(w.c.g(gItems), ld(w.c.g(gItems))-1)
						did = true
					}
				}
				if err := c.Release(); err != nil {
					return fmt.Errorf("release: %w", err)
				}
				if did {
					w.tick()
				} else {
					w.park()
					time.Sleep(100 * time.Microsecond)
				}
			}
			return nil
		},
		check: func(h *harness, final bool) {
			var prod, cons uint64
			for _, w := range h.all {
				if w.role == "p" {
					prod += ld(h.c.s(w.slot, 1))
				} else {
					cons += ld(h.c.s(w.slot, 1))
				}
			}
			// With the workers parked the lock may still be held by a
			// dead worker: then the identity may be off by the one
			// operation it was in, to be repaired by the next acquirer.
			items := ld(h.c.g(gItems))
			if d := int64(items) - int64(prod-cons); d < -1 || d > 1 || (final && d != 0) {
				h.t.Errorf("%s: items=%d produced=%d consumed=%d", name, items, prod, cons)
			}
			if od := ld(h.c.g(gOwnerDead)); od > uint64(h.kills) {
				h.t.Errorf("%s: %d ErrOwnerDead for %d kills", name, od, h.kills)
			}
		},
	}
}
