package semaphore

import (
	"context"
	"fmt"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Semaphore is a counting semaphore shared between processes: Python's
// multiprocessing.Semaphore. Obtain one with Create or Open (in a segment)
// or Init or Attach (in memory you own); the zero Semaphore is not usable.
//
// A Release synchronizes before the Acquire it unblocks, in any process
// mapping the memory. A Semaphore handle must not be copied after first
// use; it is safe for concurrent use by many goroutines.
type Semaphore struct {
	_ noCopy
	s sem
}

// BoundedSemaphore is a Semaphore whose value may never exceed its initial
// value: Python's multiprocessing.BoundedSemaphore. A Release that would
// raise it above returns ErrReleasedTooMany and changes nothing.
type BoundedSemaphore struct {
	_ noCopy
	s sem
}

func spec(name string, kind shm.Kind) shm.Spec {
	return shm.Spec{Name: name, Kind: kind, KindVersion: Version, Size: Size}
}

// Init initializes a Semaphore with the given value in mem (at least Size
// bytes, 8-byte aligned; Align recommended) and returns a handle on it.
// Nothing else may use mem while Init runs.
func Init(mem []byte, value int, opts *Options) (*Semaphore, error) {
	s, err := initSem(mem, value, kindPlain)
	if err != nil {
		return nil, err
	}
	return &Semaphore{s: s}, nil
}

// Attach returns a handle on a Semaphore that Init set up in mem, possibly
// in another process. It fails with shm.ErrCorrupt if mem does not hold one.
func Attach(mem []byte, opts *Options) (*Semaphore, error) {
	s, err := attachSem(mem, kindPlain)
	if err != nil {
		return nil, err
	}
	return &Semaphore{s: s}, nil
}

// Create places a new Semaphore named name, with the given value, in seg.
// It fails with shm.ErrExist if the name is taken.
func Create(seg *shm.Segment, name string, value int, opts *Options) (*Semaphore, error) {
	var s *Semaphore
	mem, err := seg.Alloc(spec(name, shm.KindSemaphore), func(mem []byte) (err error) {
		s, err = Init(mem, value, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("semaphore: creating %q: %w", name, err)
	}
	shm.Keep(seg, s, mem)
	stats.Publish(seg.Path(), name, shm.KindSemaphore.String(), s.s.ctr)
	return s, nil
}

// Open attaches to the Semaphore named name in seg.
func Open(seg *shm.Segment, name string, opts *Options) (*Semaphore, error) {
	mem, err := seg.Lookup(spec(name, shm.KindSemaphore))
	if err != nil {
		return nil, fmt.Errorf("semaphore: opening %q: %w", name, err)
	}
	h, err := Attach(mem, opts)
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindSemaphore.String(), h.s.ctr)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the Semaphore (value is used only if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, value int, opts *Options) (*Semaphore, error) {
	return shm.OrOpen(func() (*Semaphore, error) { return Create(seg, name, value, opts) },
		func() (*Semaphore, error) { return Open(seg, name, opts) })
}

// InitBounded initializes a BoundedSemaphore with the given initial (and
// maximum) value in mem, as Init does.
func InitBounded(mem []byte, value int, opts *Options) (*BoundedSemaphore, error) {
	s, err := initSem(mem, value, kindBounded)
	if err != nil {
		return nil, err
	}
	return &BoundedSemaphore{s: s}, nil
}

// AttachBounded returns a handle on a BoundedSemaphore that InitBounded set
// up in mem. It fails with shm.ErrCorrupt if mem does not hold one.
func AttachBounded(mem []byte, opts *Options) (*BoundedSemaphore, error) {
	s, err := attachSem(mem, kindBounded)
	if err != nil {
		return nil, err
	}
	return &BoundedSemaphore{s: s}, nil
}

// CreateBounded places a new BoundedSemaphore named name in seg.
func CreateBounded(seg *shm.Segment, name string, value int, opts *Options) (*BoundedSemaphore, error) {
	var s *BoundedSemaphore
	mem, err := seg.Alloc(spec(name, shm.KindBoundedSemaphore), func(mem []byte) (err error) {
		s, err = InitBounded(mem, value, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("semaphore: creating %q: %w", name, err)
	}
	shm.Keep(seg, s, mem)
	stats.Publish(seg.Path(), name, shm.KindBoundedSemaphore.String(), s.s.ctr)
	return s, nil
}

// OpenBounded attaches to the BoundedSemaphore named name in seg.
func OpenBounded(seg *shm.Segment, name string, opts *Options) (*BoundedSemaphore, error) {
	mem, err := seg.Lookup(spec(name, shm.KindBoundedSemaphore))
	if err != nil {
		return nil, fmt.Errorf("semaphore: opening %q: %w", name, err)
	}
	h, err := AttachBounded(mem, opts)
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindBoundedSemaphore.String(), h.s.ctr)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreateBounded opens the BoundedSemaphore (value is used only if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreateBounded(seg *shm.Segment, name string, value int, opts *Options) (*BoundedSemaphore, error) {
	return shm.OrOpen(func() (*BoundedSemaphore, error) { return CreateBounded(seg, name, value, opts) },
		func() (*BoundedSemaphore, error) { return OpenBounded(seg, name, opts) })
}

// Acquire takes one unit, blocking while the value is zero, until ctx is
// done (nil: never). It returns nil or ctx.Err(); a cancelled Acquire takes
// nothing.
func (s *Semaphore) Acquire(ctx context.Context) error {
	if s.s.fastAcquire() {
		return nil
	}
	return s.s.acquireCtx(ctx)
}

// AcquireTimeout waits up to d for a unit and reports whether it took one.
// A d of zero or less tries once without waiting, like TryAcquire. The
// error is always nil; it is there so that every mpipc acquire reads alike.
func (s *Semaphore) AcquireTimeout(d time.Duration) (bool, error) {
	if s.s.fastAcquire() {
		return true, nil
	}
	if d <= 0 {
		return s.s.tryAcquire(), nil
	}
	return timeoutResult(s.s.acquireSlow(context.Background(), futex.After(d)))
}

// TryAcquire takes a unit if the value is above zero, without waiting, and
// reports whether it did. The error is always nil.
func (s *Semaphore) TryAcquire() (bool, error) { return s.s.tryAcquire(), nil }

// Release adds n units (Python's release(n)) and wakes waiters to take
// them. It returns ErrInvalidCount for n < 1 and ErrOverflow if the value
// would exceed MaxValue; then the value is unchanged.
func (s *Semaphore) Release(n int) error { return s.s.release(n) }

// Value returns the current value, for inspection: by the time the caller
// looks at it, it may have changed.
func (s *Semaphore) Value() int { return s.s.value() }

// State returns a snapshot of the semaphore.
func (s *Semaphore) State() State { return s.s.state() }

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps while acquiring, wakes made by Release,
// AcquireTimeout calls that ran out, and acquires whose spin ended in
// sleep. Only slow paths count.
func (s *Semaphore) Stats() stats.Stats { return s.s.ctr.Load() }

// Acquire is Semaphore.Acquire.
func (s *BoundedSemaphore) Acquire(ctx context.Context) error {
	if s.s.fastAcquire() {
		return nil
	}
	return s.s.acquireCtx(ctx)
}

// AcquireTimeout is Semaphore.AcquireTimeout.
func (s *BoundedSemaphore) AcquireTimeout(d time.Duration) (bool, error) {
	if s.s.fastAcquire() {
		return true, nil
	}
	if d <= 0 {
		return s.s.tryAcquire(), nil
	}
	return timeoutResult(s.s.acquireSlow(context.Background(), futex.After(d)))
}

// TryAcquire is Semaphore.TryAcquire.
func (s *BoundedSemaphore) TryAcquire() (bool, error) { return s.s.tryAcquire(), nil }

// Release adds n units. If that would raise the value above the initial
// value it returns ErrReleasedTooMany and changes nothing; ErrInvalidCount
// for n < 1.
func (s *BoundedSemaphore) Release(n int) error { return s.s.release(n) }

// Value returns the current value, for inspection.
func (s *BoundedSemaphore) Value() int { return s.s.value() }

// Bound returns the initial value, which the value may never exceed.
func (s *BoundedSemaphore) Bound() int { return int(s.s.bound) }

// State returns a snapshot of the semaphore.
func (s *BoundedSemaphore) State() State { return s.s.state() }

// Stats is Semaphore.Stats.
func (s *BoundedSemaphore) Stats() stats.Stats { return s.s.ctr.Load() }

// State is a snapshot of a semaphore, for inspection.
type State struct {
	Value   int
	Bounded bool
	Bound   int  // the initial value of a BoundedSemaphore, else 0
	Waiters bool // a waiter may sleep in the kernel
}

func (s *sem) state() State {
	w := atomicLoad(s.w)
	return State{Value: int(w >> valueShift), Bounded: s.bounded, Bound: int(s.bound), Waiters: w&waiters != 0}
}
