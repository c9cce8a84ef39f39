// Package robust is the robust mutex algorithm that mpipc's Lock, RLock and
// segment header lock share: a futex lock word that names its holder, so
// that a waiter can tell when the holder died and take the lock over, as a
// robust pthread mutex does (EOWNERDEAD, pthread_mutex_consistent,
// ENOTRECOVERABLE).
//
// # The lock word
//
// One 64-bit word, read and written only with sync/atomic. Its low half is
// the futex word (the platforms we support are little-endian); its high half
// is the generation of the holder's registry slot (see package proc), so
// slot and generation are set and cleared together by one compare-and-swap.
//
//	bits  0..16  holder's registry slot (0: unlocked)
//	bit  29      not recoverable: a holder that took the lock over from a
//	             dead owner released it without marking it consistent
//	bit  30      inconsistent: held by a process that took it over from a
//	             dead owner and has not yet called Consistent
//	bit  31      waiters: someone may sleep in the kernel; Unlock must wake
//	bits 32..63  holder's slot generation
//
// States, named as in runtime/lock_futex.go:
//
//	unlocked   0
//	locked     self          (slot | generation<<32)
//	contended  self|waiters  (Unlock makes a futex wake)
//
// # Owner death
//
// Every check interval, one checker per process asks the process registry
// whether the holder (slot, generation) of each lock its waiters sleep on
// is still alive: one fcntl per distinct holder, never a pid or /proc; it
// wakes this process's waiters of a dead holder only (see watch.go). A
// process stopped with SIGSTOP, or running in another pid namespace, is
// alive. If the holder is dead, the waiter swaps the word
// from the dead holder's value to its own with the inconsistent bit set, and
// returns [ErrOwnerDead] holding the lock.
package robust

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/stats"
)

const (
	slotMask       = 1<<proc.SlotBits - 1
	notRecoverable = 1 << 29 // the lock can never be acquired again
	inconsistent   = 1 << 30 // held after an owner died; Consistent not called
	waiters        = 1 << 31 // a waiter may sleep in the kernel
)

// lockSpinStride is how many spin iterations pass between two looks at a
// held lock word while spinning.
const lockSpinStride = 8

// DefaultCheckInterval is how often the process's liveness checker asks
// whether the holder of a lock its waiters sleep on is alive, when the
// caller does not say.
const DefaultCheckInterval = 100 * time.Millisecond

// Errors. They are shared by every lock-like object in mpipc.
var (
	// ErrOwnerDead is returned, together with ownership of the lock, when
	// the previous holder died holding it. The new holder repairs what the
	// lock guards, calls Consistent, and releases as usual.
	ErrOwnerDead = errors.New("mpipc: previous owner died holding the lock")
	// ErrNotRecoverable is returned by every acquire after a lock taken
	// over from a dead owner was released without being marked consistent.
	ErrNotRecoverable = errors.New("mpipc: lock is not recoverable")
	// ErrNotLocked is returned when releasing a lock that is not held.
	ErrNotLocked = errors.New("mpipc: release of unlocked lock")
	// ErrNotInconsistent is returned by Consistent on a lock that is not
	// held in the inconsistent state by the caller.
	ErrNotInconsistent = errors.New("mpipc: lock is not in the owner-dead state")
)

// Mutex is a handle on a lock word in shared memory. The zero Mutex is not
// usable; make one with [New].
type Mutex struct {
	w     *uint64
	self  uint64 // reg.SelfPacked(), cached for the fast path
	reg   *proc.Registry
	check time.Duration

	// A TryLock that finds the lock held asks the registry whether the
	// holder lives (an fcntl) at most once per check interval for one
	// holder: aliveID is the holder (slot and generation, flag bits
	// cleared) it last found alive, aliveAt when (monotonic ns since
	// clockBase). Both are read and written atomically; aliveAt is stored
	// before aliveID, so a reader that sees an id sees its time or a later
	// one.
	aliveID uint64
	aliveAt int64

	// ctr counts this handle's slow-path events; it is last so that the
	// fields the fast paths and TryLock read stay together.
	ctr stats.Counters
}

// clockBase is the origin of Mutex.aliveAt: time.Since reads only the
// monotonic clock.
var clockBase = time.Now()

// New returns a handle on the lock word at w, which must be 8-byte aligned,
// whose holders are named in reg (nil: the blind registry, which never
// takes a lock over). check is the liveness check interval; zero means
// DefaultCheckInterval.
func New(w *uint64, reg *proc.Registry, check time.Duration) Mutex {
	if check <= 0 {
		check = DefaultCheckInterval
	}
	reg = proc.Or(reg)
	return Mutex{w: w, self: reg.SelfPacked(), reg: reg, check: check}
}

// Stats returns this handle's counters: sleeps, wakes, timeouts,
// takeovers from dead holders, and spins that ended in sleep.
func (m *Mutex) Stats() stats.Stats { return m.ctr.Load() }

// Counters returns this handle's counters, for an object that counts its
// own slow paths alongside the lock's.
func (m *Mutex) Counters() *stats.Counters { return &m.ctr }

// Registry returns the registry the lock's holders are named in.
func (m *Mutex) Registry() *proc.Registry { return m.reg }

func (m *Mutex) futexWord() *uint32 { return (*uint32)(unsafe.Pointer(m.w)) }

// TryLock acquires the lock if that needs no wait. It reports whether the
// lock is now held by the caller; the error is ErrOwnerDead (held) or
// ErrNotRecoverable (not held).
//
// On a held lock it asks the registry whether the holder lives, but not
// again for the same holder until the check interval has passed since it
// found it alive: polling a held lock costs a few loads and a clock read
// per try, not a system call, and a holder that dies is noticed within
// the check interval, as a sleeping waiter notices it. A holder this
// handle never saw alive is checked at once.
func (m *Mutex) TryLock() (bool, error) {
	if atomic.CompareAndSwapUint64(m.w, 0, m.self) {
		return true, nil
	}
	return m.tryTakeover()
}

// TryLockFree acquires the lock if it is unlocked, with one
// compare-and-swap, and reports whether it did. Unlike TryLock it never
// looks at the holder: it is the fast path of a caller that has its own
// slow path (RLock's Acquire, which must first ask whether it already
// owns the lock).
func (m *Mutex) TryLockFree() bool { return atomic.CompareAndSwapUint64(m.w, 0, m.self) }

// tryTakeover handles a failed fast path for a non-waiting caller.
func (m *Mutex) tryTakeover() (bool, error) {
	self := m.self
	for {
		old := atomic.LoadUint64(m.w)
		switch {
		case old == 0:
			if atomic.CompareAndSwapUint64(m.w, 0, self) {
				return true, nil
			}
			continue
		case old&notRecoverable != 0:
			return false, ErrNotRecoverable
		}
		id := old &^ (notRecoverable | inconsistent | waiters)
		if atomic.LoadUint64(&m.aliveID) == id && time.Since(clockBase)-time.Duration(atomic.LoadInt64(&m.aliveAt)) < m.check {
			return false, nil // found alive less than a check interval ago
		}
		if m.reg.Alive(holder(old)) {
			atomic.StoreInt64(&m.aliveAt, int64(time.Since(clockBase)))
			atomic.StoreUint64(&m.aliveID, id)
			return false, nil
		}
		if atomic.CompareAndSwapUint64(m.w, old, self|inconsistent|old&waiters) {
			m.ctr.OwnerDead()
			return true, ErrOwnerDead
		}
	}
}

// Lock acquires the lock, waiting until the deadline (zero: none) or until
// ctx is done (nil: never). It returns nil, ErrOwnerDead (held),
// ErrNotRecoverable, futex.ErrTimeout or ctx.Err().
func (m *Mutex) Lock(ctx context.Context, deadline time.Time) error {
	if atomic.CompareAndSwapUint64(m.w, 0, m.self) {
		return nil
	}
	return m.lockSlow(ctx, deadline)
}

// LockTimeout is Lock with a deadline d from now. The clock is read only
// when the lock is not free at once, so an uncontended timed acquire costs
// what Lock does.
func (m *Mutex) LockTimeout(d time.Duration) error {
	if atomic.CompareAndSwapUint64(m.w, 0, m.self) {
		return nil
	}
	return m.lockSlow(context.Background(), futex.After(d))
}

func (m *Mutex) lockSlow(ctx context.Context, deadline time.Time) error {
	self := m.self
	// Spin while the holder is running and nobody sleeps, looking at the
	// word only every lockSpinStride iterations (~0.5 µs): a waiter that
	// pounced on every release would pull the lock's cache line across on
	// every operation of a holder that re-acquires in a loop (two processes
	// on one counter ran at 14 M ops/s looking every ~60 ns).
	for i := 0; futex.Spin(i); i++ {
		if i%lockSpinStride != lockSpinStride-1 {
			continue
		}
		old := atomic.LoadUint64(m.w)
		if old == 0 {
			if atomic.CompareAndSwapUint64(m.w, 0, self) {
				futex.SpinDone(true)
				return nil
			}
			continue
		}
		if old&(waiters|notRecoverable) != 0 {
			break
		}
	}
	futex.SpinDone(false)
	spun := true

	// Sleep without a check deadline: the process's liveness checker
	// (watch.go) wakes us if the holder dies.
	watched := false
	defer func() {
		if watched {
			m.unwatch()
		}
	}()
	for {
		old := atomic.LoadUint64(m.w)
		if old == 0 {
			// We may not be the only waiter: take it contended, so our
			// Unlock wakes the next one.
			if atomic.CompareAndSwapUint64(m.w, 0, self|waiters) {
				return nil
			}
			continue
		}
		if old&notRecoverable != 0 {
			return ErrNotRecoverable
		}
		if old&waiters == 0 {
			if !atomic.CompareAndSwapUint64(m.w, old, old|waiters) {
				continue
			}
			old |= waiters
		}
		if !watched {
			m.watch()
			watched = true
		}
		m.ctr.Sleep(&spun)
		err := futex.Wait(ctx, m.futexWord(), uint32(old), deadline)
		if err != nil {
			if err == futex.ErrTimeout {
				m.ctr.Timeout()
			}
			return err // futex.ErrTimeout, or the context is done
		}
		// Woken with the word unchanged: a release that has not changed
		// it yet, a spurious wake, or the checker found the holder dead.
		// Ask (one fcntl); such wakes are rare.
		if atomic.LoadUint64(m.w) == old && !m.reg.Alive(holder(old)) {
			if atomic.CompareAndSwapUint64(m.w, old, self|inconsistent|waiters) {
				m.ctr.OwnerDead()
				return ErrOwnerDead
			}
		}
	}
}

// Unlock releases the lock. Any process may release it (as Python's Lock
// allows). Releasing an unlocked lock returns ErrNotLocked; releasing a lock
// taken over from a dead owner without Consistent makes it not recoverable.
func (m *Mutex) Unlock() error {
	if atomic.CompareAndSwapUint64(m.w, m.self, 0) {
		return nil
	}
	return m.unlockSlow()
}

func (m *Mutex) unlockSlow() error {
	for {
		old := atomic.LoadUint64(m.w)
		switch {
		case old&notRecoverable != 0:
			return ErrNotRecoverable
		case old&slotMask == 0:
			return ErrNotLocked
		case old&inconsistent != 0:
			// Released without repair: nobody may ever trust the data.
			if atomic.CompareAndSwapUint64(m.w, old, notRecoverable) {
				m.ctr.Wake()
				futex.WakeAll(m.futexWord())
				return nil
			}
			continue
		}
		if atomic.CompareAndSwapUint64(m.w, old, 0) {
			if old&waiters != 0 {
				m.ctr.Wake()
				futex.Wake(m.futexWord(), 1)
			}
			return nil
		}
	}
}

// Consistent marks a lock acquired with ErrOwnerDead as repaired. Only the
// process holding it may call it.
func (m *Mutex) Consistent() error {
	for {
		old := atomic.LoadUint64(m.w)
		if old&inconsistent == 0 || holder(old) != m.reg.Self() {
			return ErrNotInconsistent
		}
		if atomic.CompareAndSwapUint64(m.w, old, old&^inconsistent) {
			return nil
		}
	}
}

// Seize takes the lock if its word is not recoverable or is not a word
// this package could have written, and reports whether it did. It is for
// private locks whose data stays intact whatever a writer did (a
// double-buffered value, say), where such a word can only come from a
// corrupting peer: there, repairing beats refusing forever.
func (m *Mutex) Seize() bool {
	old := atomic.LoadUint64(m.w)
	if old&notRecoverable == 0 && Valid(old) {
		return false
	}
	return atomic.CompareAndSwapUint64(m.w, old, m.self)
}

// State is a snapshot of the lock word, for inspection.
type State struct {
	Held           bool
	Holder         proc.ID
	Waiters        bool
	Inconsistent   bool
	NotRecoverable bool
}

// Load returns a snapshot of the lock word.
func (m *Mutex) Load() State { return Decode(atomic.LoadUint64(m.w)) }

// Decode interprets a lock word.
func Decode(w uint64) State {
	return State{
		Held:           w&slotMask != 0,
		Holder:         holder(w),
		Waiters:        w&waiters != 0,
		Inconsistent:   w&inconsistent != 0,
		NotRecoverable: w&notRecoverable != 0,
	}
}

// Valid reports whether w is a lock word this package could have written:
// garbage from a hostile peer fails it.
func Valid(w uint64) bool {
	lo := uint32(w)
	if lo&^(slotMask|notRecoverable|inconsistent|waiters) != 0 {
		return false
	}
	if lo&notRecoverable != 0 {
		return w == notRecoverable|uint64(lo&waiters)
	}
	if lo&slotMask == 0 {
		return w == 0 || w == waiters // waiters may linger briefly on 0
	}
	return true
}

func holder(w uint64) proc.ID { return proc.Unpack(w) }

// IsSelf reports whether the lock is held by the calling process.
func (m *Mutex) IsSelf() bool {
	return holder(atomic.LoadUint64(m.w)) == m.reg.Self()
}

// Arm is for waiting on the lock from outside Lock (a Select): it marks a
// sleeper, so that the Unlock that frees the lock wakes the returned
// word, registers the caller with the process's liveness checker, which
// wakes this process's sleepers on the word if it finds the holder dead,
// and returns the value to sleep on. The caller tries the lock again
// (TryLock, which takes a dead holder's lock over) before it sleeps while
// *word == val, and calls Disarm once after the sleep. On a free lock the
// value is one the word never holds, so that the caller does not sleep
// but tries again.
func (m *Mutex) Arm() (word *uint32, val uint32) {
	m.watch()
	for {
		old := atomic.LoadUint64(m.w)
		switch {
		case old == 0:
			return m.futexWord(), ^uint32(0)
		case old&waiters != 0:
			return m.futexWord(), uint32(old)
		case atomic.CompareAndSwapUint64(m.w, old, old|waiters):
			return m.futexWord(), uint32(old | waiters)
		}
	}
}

// Disarm undoes one Arm's registration with the liveness checker. A
// waiters mark stays: it costs one spurious wake.
func (m *Mutex) Disarm() { m.unwatch() }
