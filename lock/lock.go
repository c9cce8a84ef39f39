package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Lock (Size bytes, little-endian, Align-aligned):
//
//	offset 0   uint64  lock word (see package internal/robust)
//	offset 8   uint32  magic "mplk"
//	offset 12  uint32  layout version
//	offset 16  padding to 64 bytes, so the lock word owns its cache line
const (
	// Size is the number of bytes a Lock occupies.
	Size = 64
	// Align is the alignment a Lock needs (a cache line).
	Align = 64
	// Version is the layout version of a Lock.
	// Version 2: owner records name process registry slots, not pids.
	Version = 2

	magic = 0x6b6c706d // "mplk"
)

// Errors. ErrOwnerDead and ErrNotRecoverable are shared with every
// lock-like object of mpipc.
var (
	// ErrOwnerDead is returned, together with the lock, when its previous
	// holder died holding it. Repair the guarded state, call Consistent,
	// then Release.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotRecoverable is returned by every acquire once a lock acquired
	// with ErrOwnerDead was released without Consistent.
	ErrNotRecoverable = robust.ErrNotRecoverable
	// ErrNotLocked is returned by Release on a lock that is not held.
	ErrNotLocked = robust.ErrNotLocked
	// ErrNotInconsistent is returned by Consistent when the lock is not
	// held by this process in the owner-dead state.
	ErrNotInconsistent = robust.ErrNotInconsistent
)

// Options configure a Lock. The zero value (or nil) means the defaults.
type Options struct {
	// CheckInterval is how often the holder is checked to be still
	// alive: while a waiter sleeps (by one checker per process, for all
	// its waiters; the waiters do not wake for it), and at most once per
	// interval by TryAcquire on a held lock. Default 100 ms: a waiter
	// takes a dead holder's lock within about this long.
	CheckInterval time.Duration
	// Registry names the processes that may hold the lock, so that a dead
	// holder can be told from a live one. Create and Open use the
	// segment's when nil. For Init and Attach, nil means no registry: a
	// dead holder's lock is then never taken over (see shm.Registry).
	Registry *shm.Registry
}

func (o *Options) check() time.Duration {
	if o == nil {
		return 0
	}
	return o.CheckInterval
}

func (o *Options) registry() *shm.Registry {
	if o == nil {
		return nil
	}
	return o.Registry
}

// in returns o with seg's registry where o names none.
func (o *Options) in(seg *shm.Segment) *Options {
	return shm.WithRegistry(o, seg, func(c *Options) **shm.Registry { return &c.Registry })
}

// Lock is a non-recursive lock shared between processes: Python's
// multiprocessing.Lock. Obtain one with Create or Open (in a segment) or
// Init or Attach (in memory you own); the zero Lock is not usable.
//
// As in Python, any process or goroutine may release a held Lock. The lock
// word records the holder's process, so that when the holder dies holding
// it the next acquirer gets it with ErrOwnerDead (see the package
// documentation).
//
// A Release synchronizes before the Acquire it unblocks, in any process
// mapping the memory. A Lock handle must not be copied after first use; it
// is safe for concurrent use by many goroutines.
type Lock struct {
	_ noCopy
	m robust.Mutex
}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

func check(mem []byte) error {
	if len(mem) < Size {
		return fmt.Errorf("lock: memory is %d bytes, need %d: %w", len(mem), Size, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("lock: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

// Init initializes an unlocked Lock in mem (at least Size bytes, 8-byte
// aligned; Align recommended) and returns a handle on it. Nothing else may
// use mem while Init runs.
func Init(mem []byte, opts *Options) (*Lock, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	w := (*uint64)(unsafe.Pointer(&mem[0]))
	atomic.StoreUint64(w, 0)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[12])), Version)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[8])), magic) // publishes the Lock
	return &Lock{m: robust.New(w, opts.registry(), opts.check())}, nil
}

// Attach returns a handle on a Lock that Init set up in mem, possibly in
// another process. It fails with shm.ErrCorrupt if mem does not hold one.
func Attach(mem []byte, opts *Options) (*Lock, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	if atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[8]))) != magic ||
		atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[12]))) != Version {
		return nil, fmt.Errorf("lock: no lock in memory: %w", shm.ErrCorrupt)
	}
	w := (*uint64)(unsafe.Pointer(&mem[0]))
	if !robust.Valid(atomic.LoadUint64(w)) {
		return nil, fmt.Errorf("lock: invalid lock word: %w", shm.ErrCorrupt)
	}
	return &Lock{m: robust.New(w, opts.registry(), opts.check())}, nil
}

func spec(name string) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindLock, KindVersion: Version, Size: Size}
}

// Create places a new, unlocked Lock named name in seg. It fails with
// shm.ErrExist if the name is taken.
func Create(seg *shm.Segment, name string, opts *Options) (*Lock, error) {
	var l *Lock
	mem, err := seg.Alloc(spec(name), func(mem []byte) (err error) {
		l, err = Init(mem, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lock: creating %q: %w", name, err)
	}
	shm.Keep(seg, l, mem)
	stats.Publish(seg.Path(), name, shm.KindLock.String(), l.m.Counters())
	return l, nil
}

// Open attaches to the Lock named name in seg.
func Open(seg *shm.Segment, name string, opts *Options) (*Lock, error) {
	mem, err := seg.Lookup(spec(name))
	if err != nil {
		return nil, fmt.Errorf("lock: opening %q: %w", name, err)
	}
	h, err := Attach(mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindLock.String(), h.m.Counters())
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the Lock named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, opts *Options) (*Lock, error) {
	return shm.OrOpen(func() (*Lock, error) { return Create(seg, name, opts) },
		func() (*Lock, error) { return Open(seg, name, opts) })
}

// Acquire blocks until the lock is held or ctx is done. It returns nil;
// ErrOwnerDead, holding the lock; ErrNotRecoverable; or ctx.Err(), leaving
// the lock as it was.
func (l *Lock) Acquire(ctx context.Context) error {
	return l.m.Lock(ctx, time.Time{})
}

// AcquireTimeout waits up to d for the lock and reports whether it is held.
// A d of zero or less tries once without waiting, like TryAcquire. The error
// is ErrOwnerDead (held) or ErrNotRecoverable.
func (l *Lock) AcquireTimeout(d time.Duration) (bool, error) {
	if d <= 0 {
		return l.m.TryLock()
	}
	err := l.m.LockTimeout(d)
	switch err {
	case nil:
		return true, nil
	case futex.ErrTimeout:
		return false, nil
	case ErrOwnerDead:
		return true, err
	}
	return false, err
}

// TryAcquire acquires the lock if it is free, without waiting, and reports
// whether it is held. If the holder is dead, the lock is taken over and the
// error is ErrOwnerDead. A holder this handle found alive is asked about
// again only once per CheckInterval, so polling a held lock makes no
// system call; a holder that dies is noticed within that interval.
func (l *Lock) TryAcquire() (bool, error) { return l.m.TryLock() }

// Release releases the lock; any process or goroutine may. Releasing an
// unheld lock returns ErrNotLocked. Releasing a lock acquired with
// ErrOwnerDead without calling Consistent first makes it not recoverable.
func (l *Lock) Release() error { return l.m.Unlock() }

// Consistent marks a lock acquired with ErrOwnerDead as repaired, so that
// it works normally after Release.
func (l *Lock) Consistent() error { return l.m.Consistent() }

// Held reports whether the lock is held by anyone, with one atomic load.
func (l *Lock) Held() bool { return l.m.Load().Held }

// State is a snapshot of a Lock, for inspection.
type State struct {
	Held           bool
	HolderSlot     int  // the holder's slot in the process registry
	HolderPid      int  // its pid, as it saw itself (display only; 0: unknown)
	HolderAlive    bool // whether the registry says the holder lives
	HeldBySelf     bool // held by this process
	Waiters        bool
	Inconsistent   bool // held after an owner died; not yet Consistent
	NotRecoverable bool
}

// State returns a snapshot of the lock. It asks the process registry
// whether the holder is alive (one fcntl).
func (l *Lock) State() State {
	s := l.m.Load()
	st := State{Held: s.Held, Waiters: s.Waiters, Inconsistent: s.Inconsistent, NotRecoverable: s.NotRecoverable}
	if s.Held {
		reg := l.m.Registry()
		st.HolderSlot = int(s.Holder.Slot)
		st.HolderPid = reg.Pid(s.Holder)
		st.HolderAlive = reg.Alive(s.Holder)
		st.HeldBySelf = s.Holder == reg.Self()
	}
	return st
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps while acquiring, wakes made by Release,
// AcquireTimeout calls that ran out, takeovers from a dead holder, and
// acquires whose spin ended in sleep. Only slow paths count: an
// uncontended Acquire or Release touches no counter.
func (l *Lock) Stats() stats.Stats { return l.m.Stats() }

// Locker returns a sync.Locker whose Lock and Unlock acquire and release l.
// They panic on any error. A Lock that finds the previous owner died
// holding the lock (ErrOwnerDead) does not pretend the guarded state is
// sound: it releases the lock unrepaired, which makes it not recoverable
// for every process (as a robust pthread mutex released without
// pthread_mutex_consistent), and panics. Code that can repair the state
// uses LockerRepair, or Acquire.
func (l *Lock) Locker() sync.Locker { return locker{l: l} }

// LockerRepair is Locker with a repair step: when Lock finds that the
// previous owner died holding the lock, it calls repair (holding the
// lock); if repair returns nil the lock is marked consistent and Lock
// returns normally, else Lock releases it unrepaired (not recoverable) and
// panics with repair's error.
func (l *Lock) LockerRepair(repair func() error) sync.Locker {
	return locker{l: l, repair: repair}
}

type locker struct {
	l      *Lock
	repair func() error
}

func (k locker) Lock() {
	err := k.l.Acquire(context.Background())
	switch err {
	case nil:
		return
	case ErrOwnerDead:
		err = errors.New("no repair function (use LockerRepair or Acquire)")
		if k.repair != nil {
			if err = k.repair(); err == nil {
				if err = k.l.Consistent(); err == nil {
					return
				}
			}
		}
		k.l.Release() // unrepaired: not recoverable, for everyone
		panic(fmt.Sprintf("lock: %v, and the state it guards was not repaired: %v", ErrOwnerDead, err))
	}
	panic("lock: " + err.Error())
}

func (k locker) Unlock() {
	if err := k.l.Release(); err != nil {
		panic("lock: " + err.Error())
	}
}
