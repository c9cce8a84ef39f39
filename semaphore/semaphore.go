package semaphore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Semaphore or BoundedSemaphore (Size bytes,
// little-endian, Align-aligned):
//
//	offset 0   uint32  state word (see below); the futex word
//	offset 4   uint32  magic "mpsm"
//	offset 8   uint32  layout version
//	offset 12  uint32  kind: 1 Semaphore, 2 BoundedSemaphore
//	offset 16  uint32  bound: the initial value of a BoundedSemaphore, else 0
//	offset 20  padding to 64 bytes, so the state word owns its cache line
const (
	// Size is the number of bytes a Semaphore or BoundedSemaphore occupies.
	Size = 64
	// Align is the alignment they need (a cache line).
	Align = 64
	// Version is the layout version.
	Version = 1

	// MaxValue is the largest value a semaphore can hold.
	MaxValue = math.MaxUint32 >> valueShift

	magic        = 0x6d73706d // "mpsm"
	kindPlain    = 1
	kindBounded  = 2
	offMagic     = 4
	offVersion   = 8
	offKind      = 12
	offBound     = 16
	checkedBytes = 20
)

// The state word.
//
//	bit  0      waiters: a waiter may sleep in the kernel; Release must wake
//	bits 1..31  value
//
// Wake policy. The waiters bit is a flag, not a count: a Release that finds
// it set clears it and wakes every sleeper; the sleepers that find no unit
// left set it again and go back to sleep. A count would let Release wake
// exactly n, but a waiter killed while registered would leave the count
// too high forever, costing every later Release a system call. With the
// flag, a dead waiter costs at most one wake system call, by the next
// Release, and the semaphore never wedges: sleepers re-check the word after
// every wakeup.
const (
	waiters    = 1 << iota // a waiter may sleep in the kernel
	valueShift = iota      // the value counts from here
)

// Errors.
var (
	// ErrNegative is returned by the constructors for a negative initial
	// value.
	ErrNegative = errors.New("semaphore: initial value must be >= 0")
	// ErrOverflow is returned when a value would exceed MaxValue. The
	// semaphore is left unchanged.
	ErrOverflow = errors.New("semaphore: value would overflow")
	// ErrReleasedTooMany is returned when Release would raise a
	// BoundedSemaphore above its initial value. The value is left
	// unchanged.
	ErrReleasedTooMany = errors.New("semaphore: released too many times")
	// ErrInvalidCount is returned by Release for n < 1.
	ErrInvalidCount = errors.New("semaphore: release count must be one or more")
)

// Options configure a semaphore. The zero value (or nil) means the
// defaults; there are none yet, and the struct is here so that the
// constructors read like every other mpipc constructor.
type Options struct{}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// sem is the algorithm both public types share.
type sem struct {
	w       *uint32 // state word
	limit   uint32  // the most the value may be: bound, or MaxValue
	bound   uint32  // the initial value of a bounded semaphore, else 0
	bounded bool
	ctr     *stats.Counters // this handle's slow-path events
}

func check(mem []byte) error {
	if len(mem) < Size {
		return fmt.Errorf("semaphore: memory is %d bytes, need %d: %w", len(mem), Size, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("semaphore: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

func word(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

func initSem(mem []byte, value int, kind uint32) (sem, error) {
	if err := check(mem); err != nil {
		return sem{}, err
	}
	if value < 0 {
		return sem{}, ErrNegative
	}
	if value > MaxValue {
		return sem{}, ErrOverflow
	}
	var bound uint32
	if kind == kindBounded {
		bound = uint32(value)
	}
	atomic.StoreUint32(word(mem, 0), uint32(value)<<valueShift)
	atomic.StoreUint32(word(mem, offVersion), Version)
	atomic.StoreUint32(word(mem, offKind), kind)
	atomic.StoreUint32(word(mem, offBound), bound)
	atomic.StoreUint32(word(mem, offMagic), magic) // publishes the semaphore
	return newSem(mem, bound, kind), nil
}

func newSem(mem []byte, bound, kind uint32) sem {
	s := sem{w: word(mem, 0), limit: MaxValue, bound: bound, bounded: kind == kindBounded, ctr: new(stats.Counters)}
	if s.bounded {
		s.limit = bound
	}
	return s
}

func attachSem(mem []byte, kind uint32) (sem, error) {
	if err := check(mem); err != nil {
		return sem{}, err
	}
	if atomic.LoadUint32(word(mem, offMagic)) != magic ||
		atomic.LoadUint32(word(mem, offVersion)) != Version {
		return sem{}, fmt.Errorf("semaphore: no semaphore in memory: %w", shm.ErrCorrupt)
	}
	if k := atomic.LoadUint32(word(mem, offKind)); k != kind {
		return sem{}, fmt.Errorf("semaphore: memory holds kind %d, want %d: %w", k, kind, shm.ErrCorrupt)
	}
	bound := atomic.LoadUint32(word(mem, offBound))
	s := newSem(mem, bound, kind)
	if kind == kindBounded {
		if bound > MaxValue || s.value() > int(bound) {
			return sem{}, fmt.Errorf("semaphore: value %d above bound %d: %w", s.value(), bound, shm.ErrCorrupt)
		}
	} else if bound != 0 {
		return sem{}, fmt.Errorf("semaphore: unbounded semaphore with a bound: %w", shm.ErrCorrupt)
	}
	return s, nil
}

func (s *sem) value() int { return int(atomic.LoadUint32(s.w) >> valueShift) }

func atomicLoad(w *uint32) uint32 { return atomic.LoadUint32(w) }

// fastAcquire is the uncontended Acquire: one load and one
// compare-and-swap, inlined into the callers.
func (s *sem) fastAcquire() bool {
	old := atomic.LoadUint32(s.w)
	return old>>valueShift != 0 && atomic.CompareAndSwapUint32(s.w, old, old-1<<valueShift)
}

// tryAcquire takes one unit if there is one. It makes no syscall.
func (s *sem) tryAcquire() bool {
	for {
		old := atomic.LoadUint32(s.w)
		if old>>valueShift == 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(s.w, old, old-1<<valueShift) {
			return true
		}
	}
}

// acquireCtx is acquireSlow without a deadline, outlined so that Acquire
// inlines.
//
//go:noinline
func (s *sem) acquireCtx(ctx context.Context) error { return s.acquireSlow(ctx, time.Time{}) }

// acquireSlow takes one unit, waiting until the deadline (zero: none) or
// until ctx is done (nil: never). It returns nil, futex.ErrTimeout or
// ctx.Err(); on error the value is unchanged (nothing was taken).
func (s *sem) acquireSlow(ctx context.Context, deadline time.Time) error {
	// Spin before registering as a waiter, so that a releaser running on
	// another CPU hands over without a system call on either side.
	for i := 0; futex.Spin(i); i++ {
		if s.tryAcquire() {
			futex.SpinDone(true)
			return nil
		}
	}
	futex.SpinDone(false)
	spun := true
	for {
		old := atomic.LoadUint32(s.w)
		if old>>valueShift > 0 {
			// Keep the waiters bit: others may still sleep.
			if atomic.CompareAndSwapUint32(s.w, old, old-1<<valueShift) {
				return nil
			}
			continue
		}
		if old&waiters == 0 {
			if !atomic.CompareAndSwapUint32(s.w, old, old|waiters) {
				continue
			}
			old |= waiters
		}
		s.ctr.Sleep(&spun)
		if err := futex.Wait(ctx, s.w, old, deadline); err != nil {
			// A unit may have arrived with the timeout or cancellation;
			// leaving it to the next acquirer keeps "cancelled leaves
			// the semaphore unchanged" true.
			if err == futex.ErrTimeout {
				s.ctr.Timeout()
			}
			return err
		}
	}
}

// release adds n units, at most up to s.limit, and wakes the sleepers if
// any may sleep. The uncontended Release(1) is one load and one
// compare-and-swap, inlined into the callers.
func (s *sem) release(n int) error {
	old := atomic.LoadUint32(s.w)
	if n == 1 && old&waiters == 0 && old>>valueShift < s.limit &&
		atomic.CompareAndSwapUint32(s.w, old, old+1<<valueShift) {
		return nil
	}
	return s.releaseSlow(n)
}

func (s *sem) releaseSlow(n int) error {
	if n < 1 {
		return ErrInvalidCount
	}
	for {
		old := atomic.LoadUint32(s.w)
		v := uint64(old >> valueShift)
		if v+uint64(n) > uint64(s.limit) {
			if s.bounded {
				return ErrReleasedTooMany
			}
			return ErrOverflow
		}
		// Clearing the waiters bit: every sleeper is woken below, and
		// those that find no unit set it again.
		nw := uint32(v+uint64(n)) << valueShift
		if atomic.CompareAndSwapUint32(s.w, old, nw) {
			if old&waiters != 0 {
				s.ctr.Wake()
				futex.WakeAll(s.w)
			}
			return nil
		}
	}
}

func timeoutResult(err error) (bool, error) {
	switch err {
	case nil:
		return true, nil
	case futex.ErrTimeout:
		return false, nil
	}
	return false, err
}
