//go:build linux

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
)

// Lock and RLock: a ledger of two words A and B guarded by the lock. Inside
// the critical section a worker increments A, spins, increments B and its
// own count. A holder killed in between leaves A != B; the next acquirer
// must get ErrOwnerDead, repair (B = A) and call Consistent. An acquire
// that returns nil and finds A != B is a violation (exclusion or the
// owner-dead report failed). Conservation: A - sum(counts) is in [0, kills].

const (
	gA = gKindBase + iota
	gB
	gInside
)

const crashCheck = 5 * time.Millisecond // CheckInterval of every handle in the crash suite

type robustLock interface {
	Acquire(ctx context.Context) error
	AcquireTimeout(d time.Duration) (bool, error)
	TryAcquire() (bool, error)
	Release() error
	Consistent() error
}

// acquireLedger takes lk by one of its three forms and checks the ledger.
func acquireLedger(w *wctx, lk robustLock) (bool, error) {
	var err error
	w.blocking(true)
	defer w.blocking(false)
	switch w.rng.IntN(4) {
	case 0:
		var ok bool
		if ok, err = lk.TryAcquire(); !ok {
			if err != nil {
				return false, fmt.Errorf("TryAcquire: %w", err)
			}
			return false, nil
		}
	case 1:
		var ok bool
		if ok, err = lk.AcquireTimeout(time.Second); !ok {
			if err != nil {
				return false, fmt.Errorf("AcquireTimeout: %w", err)
			}
			return false, nil
		}
	default:
		err = lk.Acquire(context.Background())
	}
	a, b, in := ld(w.c.g(gA)), ld(w.c.g(gB)), ld(w.c.g(gInside))
	switch {
	case errors.Is(err, lock.ErrOwnerDead):
		inc(w.c.g(gOwnerDead))
		if a != b || in != 0 {
			inc(w.c.g(gRepairs))
			st(w.c.g(gB), a)
			st(w.c.g(gInside), 0)
		}
		if err := lk.Consistent(); err != nil {
			return true, fmt.Errorf("Consistent: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("acquire: %w", err)
	default:
		if a != b || in != 0 {
			w.violation("acquired without ErrOwnerDead: A=%d B=%d inside=%d", a, b, in)
			st(w.c.g(gB), a)
			st(w.c.g(gInside), 0)
		}
	}
	return true, nil
}

// section is the critical section: A++, a short spin, B++, own count++.
func section(w *wctx) {
	st(w.c.g(gInside), uint64(w.slot)+1)
	st(w.c.g(gA), ld(w.c.g(gA))+1)
	for i, n := 0, w.rng.IntN(200); i < n; i++ {
		_ = ld(w.c.g(gA))
	}
	st(w.c.g(gB), ld(w.c.g(gB))+1)
	inc(w.s(1))
	st(w.c.g(gInside), 0)
}

func checkLedger(h *harness, final bool) {
	a, b := ld(h.c.g(gA)), ld(h.c.g(gB))
	sum := h.sumSlots(1)
	if final && a != b {
		h.t.Errorf("%s: ledger torn at the end: A=%d B=%d", h.k.name, a, b)
	}
	if a < sum || a-sum > uint64(h.kills) {
		h.t.Errorf("%s: conservation: A=%d, sections counted %d, kills %d", h.k.name, a, sum, h.kills)
	}
	if od := ld(h.c.g(gOwnerDead)); od > uint64(h.kills) {
		h.t.Errorf("%s: %d ErrOwnerDead for %d kills", h.k.name, od, h.kills)
	}
}

func init() {
	addCrashKind(&crashKind{
		name:    "lock",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			if _, err := lock.Create(h.seg, "obj", nil); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			l, err := lock.Open(w.seg, "obj", &lock.Options{CheckInterval: crashCheck})
			if err != nil {
				return err
			}
			ready()
			for !w.stopped() {
				ok, err := acquireLedger(w, l)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				section(w)
				if err := l.Release(); err != nil {
					return fmt.Errorf("release: %w", err)
				}
				w.tick()
			}
			return nil
		},
		check: checkLedger,
	})
	addCrashKind(&crashKind{
		name:    "rlock",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			if _, err := rlock.Create(h.seg, "obj", nil); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			r, err := rlock.Open(w.seg, "obj", &rlock.Options{CheckInterval: crashCheck})
			if err != nil {
				return err
			}
			ready()
			for !w.stopped() {
				ok, err := acquireLedger(w, r)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				// Recursion: a second level, released before the outer one.
				if err := r.Acquire(context.Background()); err != nil {
					return fmt.Errorf("recursive acquire: %w", err)
				}
				if r.Level() != 2 {
					w.violation("level %d after recursive acquire", r.Level())
				}
				section(w)
				if err := r.Release(); err != nil {
					return fmt.Errorf("inner release: %w", err)
				}
				if err := r.Release(); err != nil {
					return fmt.Errorf("release: %w", err)
				}
				w.tick()
			}
			return nil
		},
		check: checkLedger,
	})
	addCrashKind(semaphoreKind())
}

// Semaphore: K units, more workers than units. Each worker publishes its
// state in its slot: 0 idle, 1 acquiring, 2 holding, 3 releasing. A unit
// is certainly held in state 2, possibly in states 1 and 3. A worker
// killed holding a unit takes it with it (documented). At each trial the
// parent parks every live worker at the top of its loop (state 0, exact),
// so the units held by dead workers are exactly K - value - (dead in
// state 2) among the dead in states 1 and 3: it checks that number is in
// range, releases the lost units back (counting them as losses), and the
// losses over the run must not exceed the kills.

const (
	semK     = 2
	sState   = 1
	gSemLost = gKindBase + 8
)

func semaphoreKind() *crashKind {
	return &crashKind{
		name:    "semaphore",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			if _, err := semaphore.Create(h.seg, "obj", semK, nil); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			s, err := semaphore.Open(w.seg, "obj", nil)
			if err != nil {
				return err
			}
			ready()
			for !w.stopped() {
				st(w.s(sState), 1)
				w.blocking(true)
				var ok bool
				switch w.rng.IntN(3) {
				case 0:
					ok, _ = s.TryAcquire()
				case 1:
					ok, _ = s.AcquireTimeout(20 * time.Millisecond)
				default:
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					ok = s.Acquire(ctx) == nil
					cancel()
				}
				w.blocking(false)
				if !ok {
					st(w.s(sState), 0)
					w.park()
					continue
				}
				st(w.s(sState), 2)
				for i, n := 0, w.rng.IntN(500); i < n; i++ {
					_ = ld(w.s(sState))
				}
				st(w.s(sState), 3)
				if err := s.Release(1); err != nil {
					return err
				}
				st(w.s(sState), 0)
				w.tick()
			}
			return nil
		},
		trial: func(h *harness) {
			h.randomMoment()
			v := h.randomWorker()
			h.kill(v)
			h.pause()
			semResolve(h)
			h.start(v.role)
			h.unpause()
			h.waitProgress(h.ws)
		},
		check: func(h *harness, final bool) {
			if final {
				semResolve(h)
				if lost := ld(h.c.g(gSemLost)); lost > uint64(h.kills) {
					h.t.Errorf("semaphore: %d units lost for %d kills", lost, h.kills)
				}
				h.t.Logf("semaphore: %d units lost with killed holders (documented), %d kills", ld(h.c.g(gSemLost)), h.kills)
			}
		},
	}
}

// semResolve runs with every live worker parked (state 0) or exited.
func semResolve(h *harness) {
	s, err := semaphore.Open(h.seg, "obj", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var held, amb int
	for _, w := range h.all {
		switch ld(h.c.s(w.slot, sState)) {
		case 2:
			if !w.dead {
				h.t.Fatalf("semaphore: parked worker %d in state 2", w.slot)
			}
			held++
		case 1, 3:
			if !w.dead {
				h.t.Fatalf("semaphore: parked worker %d in a transient state", w.slot)
			}
			amb++
		}
	}
	v := s.Value()
	x := semK - v - held // units held by dead workers in states 1 and 3
	if x < 0 || x > amb {
		h.t.Fatalf("semaphore: conservation: K=%d value=%d held by dead=%d, so %d units in %d ambiguous slots",
			semK, v, held, x, amb)
	}
	lost := held + x
	if lost > 0 {
		if err := s.Release(lost); err != nil {
			h.t.Fatal(err)
		}
		st(h.c.g(gSemLost), ld(h.c.g(gSemLost))+uint64(lost))
	}
	for _, w := range h.all {
		if w.dead {
			st(h.c.s(w.slot, sState), 0)
		}
	}
}
