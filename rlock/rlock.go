package rlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/release"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of an RLock (Size bytes, little-endian, Align-aligned):
//
//	offset 0   uint64  lock word (see package internal/robust): owner process
//	offset 8   uint32  magic "mprl"
//	offset 12  uint32  layout version
//	offset 16  uint64  owner goroutine id within the owner process (0: none)
//	offset 24  uint32  extra recursion levels: the level minus 1 while held,
//	                   0 while free
//	offset 28  padding to 64 bytes
//
// The goroutine id and the extra levels are written only by the owner while
// it holds the lock word: after acquiring it and before releasing it.
// Another process never reads them to decide anything while the holder
// lives; a process that takes the lock over from a dead owner overwrites
// both. Keeping the level minus one makes the common acquire and release
// (level 1) leave that word alone: it is 0 before and after, so the fast
// path is the lock word's compare-and-swap plus one store of the goroutine
// id each way. Those stores need only release order (release.Store64): the
// goroutine id matters only to the goroutine that wrote it, and the id is
// cleared before the lock word is released.
const (
	// Size is the number of bytes an RLock occupies.
	Size = 64
	// Align is the alignment an RLock needs (a cache line).
	Align = 64
	// Version is the layout version of an RLock.
	// Version 2: owner records name process registry slots, not pids.
	Version = 2

	// MaxLevel is the highest recursion level an RLock holds.
	MaxLevel = 1<<32 - 1

	magic = 0x6c72706d // "mprl"

	offWord  = 0
	offMagic = 8
	offVers  = 12
	offOwner = 16
	offExtra = 24
)

// Errors. ErrOwnerDead, ErrNotRecoverable, ErrNotLocked and
// ErrNotInconsistent are the values of package lock, shared by every
// lock-like object of mpipc.
var (
	// ErrOwnerDead is returned, together with the RLock at level 1, when
	// its previous owner died holding it, at whatever level. Repair the
	// guarded state, call Consistent, then Release.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotRecoverable is returned by every acquire once an RLock
	// acquired with ErrOwnerDead was fully released without Consistent.
	ErrNotRecoverable = robust.ErrNotRecoverable
	// ErrNotLocked is returned (wrapped together with ErrNotOwner) by
	// Release and ReleaseAll on an RLock that nobody holds.
	ErrNotLocked = robust.ErrNotLocked
	// ErrNotInconsistent is returned by Consistent when the caller does
	// not own the RLock in the owner-dead state.
	ErrNotInconsistent = robust.ErrNotInconsistent
	// ErrNotOwner is returned by Release and ReleaseAll when the calling
	// goroutine does not own the RLock: another goroutine or process holds
	// it, or nobody does (then errors.Is(err, ErrNotLocked) holds too).
	ErrNotOwner = errors.New("rlock: release by a goroutine that does not own the lock")
	// ErrLevel is returned by AcquireLevel and AcquireLevelTimeout for a
	// level below 1, and by every acquire that would raise the level above
	// MaxLevel.
	ErrLevel = errors.New("rlock: level out of range")
)

// errUnlocked is the error of a release of an RLock nobody holds.
var errUnlocked error = unlockedError{}

type unlockedError struct{}

func (unlockedError) Error() string { return "rlock: release of an unlocked lock" }
func (unlockedError) Is(target error) bool {
	return target == ErrNotOwner || target == ErrNotLocked
}

// Options configure an RLock. The zero value (or nil) means the defaults.
type Options struct {
	// CheckInterval is how often a waiter, or TryAcquire on a held lock,
	// checks whether the owner process is still alive. Default 100 ms: a
	// waiter takes a dead owner's lock within about this long.
	CheckInterval time.Duration
	// Registry names the processes that may own the lock, so that a dead
	// owner can be told from a live one. Create and Open use the
	// segment's when nil. For Init and Attach, nil means no registry: a
	// dead owner's lock is then never taken over (see shm.Registry).
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

// RLock is a recursive lock shared between processes: Python's
// multiprocessing.RLock. Obtain one with Create or Open (in a segment) or
// Init or Attach (in memory you own); the zero RLock is not usable.
//
// The owner is the goroutine, in its process, that acquired it. The owner
// may acquire it again; each Acquire raises the level by one and each
// Release lowers it, and the release from level 1 frees the lock and wakes
// one waiter. Any other goroutine, of the same process or another, blocks
// in Acquire until then, and gets ErrNotOwner from Release.
//
// The last Release synchronizes before the Acquire it unblocks, in any
// process mapping the memory. An RLock handle must not be copied after
// first use; it is safe for concurrent use by many goroutines.
type RLock struct {
	_     noCopy
	m     robust.Mutex
	owner *uint64 // goroutine id of the owner
	extra *uint32 // level - 1 while held
}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

func check(mem []byte) error {
	if len(mem) < Size {
		return fmt.Errorf("rlock: memory is %d bytes, need %d: %w", len(mem), Size, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("rlock: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

func handle(mem []byte, opts *Options) *RLock {
	return &RLock{
		m:     robust.New((*uint64)(unsafe.Pointer(&mem[offWord])), opts.registry(), opts.check()),
		owner: (*uint64)(unsafe.Pointer(&mem[offOwner])),
		extra: (*uint32)(unsafe.Pointer(&mem[offExtra])),
	}
}

// Init initializes an unlocked RLock in mem (at least Size bytes, 8-byte
// aligned; Align recommended) and returns a handle on it. Nothing else may
// use mem while Init runs.
func Init(mem []byte, opts *Options) (*RLock, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	r := handle(mem, opts)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[offWord])), 0)
	atomic.StoreUint64(r.owner, 0)
	atomic.StoreUint32(r.extra, 0)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[offVers])), Version)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[offMagic])), magic) // publishes the RLock
	return r, nil
}

// Attach returns a handle on an RLock that Init set up in mem, possibly in
// another process. It fails with shm.ErrCorrupt if mem does not hold one.
func Attach(mem []byte, opts *Options) (*RLock, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	if atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[offMagic]))) != magic ||
		atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[offVers]))) != Version {
		return nil, fmt.Errorf("rlock: no rlock in memory: %w", shm.ErrCorrupt)
	}
	if !robust.Valid(atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[offWord])))) {
		return nil, fmt.Errorf("rlock: invalid lock word: %w", shm.ErrCorrupt)
	}
	return handle(mem, opts), nil
}

func spec(name string) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindRLock, KindVersion: Version, Size: Size}
}

// Create places a new, unlocked RLock named name in seg. It fails with
// shm.ErrExist if the name is taken.
func Create(seg *shm.Segment, name string, opts *Options) (*RLock, error) {
	var r *RLock
	mem, err := seg.Alloc(spec(name), func(mem []byte) (err error) {
		r, err = Init(mem, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rlock: creating %q: %w", name, err)
	}
	shm.Keep(seg, r, mem)
	stats.Publish(seg.Path(), name, shm.KindRLock.String(), r.m.Counters())
	return r, nil
}

// Open attaches to the RLock named name in seg. A name that holds another
// kind of object gives shm.ErrKindMismatch.
func Open(seg *shm.Segment, name string, opts *Options) (*RLock, error) {
	mem, err := seg.Lookup(spec(name))
	if err != nil {
		return nil, fmt.Errorf("rlock: opening %q: %w", name, err)
	}
	h, err := Attach(mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindRLock.String(), h.m.Counters())
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the RLock named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, opts *Options) (*RLock, error) {
	return shm.OrOpen(func() (*RLock, error) { return Create(seg, name, opts) },
		func() (*RLock, error) { return Open(seg, name, opts) })
}

// owns reports whether goroutine g of this process owns the lock. The
// owner field can equal g only if g wrote it: g clears it before releasing,
// and another goroutine of this process overwrites it only after acquiring.
func (r *RLock) owns(g uint64) bool {
	return r.m.IsSelf() && atomic.LoadUint64(r.owner) == g
}

// Held reports whether the RLock is held by anyone, with one atomic load.
func (r *RLock) Held() bool { return r.m.Load().Held }

// Owned reports whether the calling goroutine owns the RLock.
func (r *RLock) Owned() bool { return r.owns(goid()) }

// Level returns the calling goroutine's recursion level: 0 if it does not
// own the RLock.
func (r *RLock) Level() int {
	if !r.Owned() {
		return 0
	}
	return int(atomic.LoadUint32(r.extra)) + 1
}

// raise adds n levels for the owner, refusing to pass MaxLevel.
func (r *RLock) raise(n int) error {
	x := atomic.LoadUint32(r.extra)
	if uint64(x)+uint64(n) > MaxLevel-1 {
		return ErrLevel
	}
	release.Store32(r.extra, x+uint32(n))
	return nil
}

// took records the calling goroutine as owner at level n after the lock
// word was acquired. After an ordinary acquire the extra levels are already
// 0 (every release leaves them so); after a takeover they are the dead
// owner's and must be overwritten.
func (r *RLock) took(g uint64, n int, err error) {
	release.Store64(r.owner, g)
	if n != 1 || err != nil {
		release.Store32(r.extra, uint32(n-1))
	}
}

// Acquire acquires the RLock, or raises its level if the calling goroutine
// owns it, blocking until then or until ctx is done (nil: never). It
// returns nil; ErrOwnerDead, holding the lock at level 1; ErrNotRecoverable;
// or ctx.Err(), leaving the lock as it was.
//
// The fast path takes a free lock word with one compare-and-swap and
// records the goroutine with one plain store: a lock that was free cannot
// have been the caller's, so the ownership check is left to the slow path.
func (r *RLock) Acquire(ctx context.Context) error {
	if r.m.TryLockFree() {
		storeGoid(r.owner)
		return nil
	}
	return r.acquireSlow(ctx)
}

func (r *RLock) acquireSlow(ctx context.Context) error {
	g := goid()
	if r.owns(g) {
		return r.raise(1)
	}
	return r.lock(ctx, time.Time{}, g, 1)
}

func (r *RLock) lock(ctx context.Context, deadline time.Time, g uint64, n int) error {
	err := r.m.Lock(ctx, deadline)
	if err == nil || err == ErrOwnerDead {
		r.took(g, n, err)
	}
	return err
}

// AcquireTimeout waits up to d for the RLock and reports whether the caller
// owns it. A d of zero or less tries once, like TryAcquire. The error is
// ErrOwnerDead (owned, level 1) or ErrNotRecoverable.
func (r *RLock) AcquireTimeout(d time.Duration) (bool, error) {
	return r.acquireTimeout(d, 1)
}

// TryAcquire acquires the RLock, or raises its level, if that needs no
// wait, and reports whether the caller owns it. If the owner process is
// dead the lock is taken over and the error is ErrOwnerDead. An owner this
// handle found alive is asked about again only once per CheckInterval, so
// polling a held RLock makes no system call.
func (r *RLock) TryAcquire() (bool, error) {
	if r.m.TryLockFree() { // as in Acquire
		storeGoid(r.owner)
		return true, nil
	}
	return r.acquireTimeout(0, 1)
}

func (r *RLock) acquireTimeout(d time.Duration, n int) (bool, error) {
	g := goid()
	if r.owns(g) {
		if err := r.raise(n); err != nil {
			return false, err
		}
		return true, nil
	}
	if d <= 0 {
		ok, err := r.m.TryLock()
		if ok {
			r.took(g, n, err)
		}
		return ok, err
	}
	err := r.m.LockTimeout(d)
	if err == nil || err == ErrOwnerDead {
		r.took(g, n, err)
	}
	switch err {
	case nil:
		return true, nil
	case futex.ErrTimeout:
		return false, nil
	case ErrOwnerDead:
		return true, err
	default:
		return false, err
	}
}

// AcquireLevel acquires the RLock as n nested Acquire calls would, in one
// step: it restores a level saved by ReleaseAll (a Condition's Wait does
// this). If the caller already owns the RLock its level rises by n. A
// level below 1 gives ErrLevel. Errors are as for Acquire; with
// ErrOwnerDead the lock is held at level n.
func (r *RLock) AcquireLevel(ctx context.Context, n int) error {
	if n < 1 || uint64(n) > MaxLevel {
		return ErrLevel
	}
	g := goid()
	if r.owns(g) {
		return r.raise(n)
	}
	return r.lock(ctx, time.Time{}, g, n)
}

// AcquireLevelTimeout is AcquireLevel with a timeout, as AcquireTimeout.
func (r *RLock) AcquireLevelTimeout(d time.Duration, n int) (bool, error) {
	if n < 1 || uint64(n) > MaxLevel {
		return false, ErrLevel
	}
	return r.acquireTimeout(d, n)
}

// notOwned is the error for a release by a goroutine that does not own
// the lock.
func (r *RLock) notOwned() error {
	if !r.m.Load().Held {
		return errUnlocked
	}
	return ErrNotOwner
}

// Release lowers the level by one and, from level 1, frees the RLock and
// wakes one waiter. A goroutine that does not own it gets ErrNotOwner (and
// ErrNotLocked if nobody holds it), and nothing changes. The last release
// of a lock acquired with ErrOwnerDead, without Consistent, makes it not
// recoverable.
func (r *RLock) Release() error {
	g := goid()
	if !r.owns(g) {
		return r.notOwned()
	}
	if x := atomic.LoadUint32(r.extra); x > 0 {
		release.Store32(r.extra, x-1)
		return nil
	}
	return r.unlock()
}

// unlock frees the lock word; the extra levels are 0. The owner word is
// cleared before the lock word is released (the release store keeps that
// order), so no later holder's goroutine is ever taken for this one.
func (r *RLock) unlock() error {
	release.Store64(r.owner, 0)
	return r.m.Unlock()
}

// ReleaseAll frees the RLock whatever its level and returns the level it
// had, for AcquireLevel to restore. Errors are as for Release.
func (r *RLock) ReleaseAll() (level int, err error) {
	g := goid()
	if !r.owns(g) {
		return 0, r.notOwned()
	}
	x := atomic.LoadUint32(r.extra)
	if x > 0 {
		release.Store32(r.extra, 0)
	}
	return int(x) + 1, r.unlock()
}

// Consistent marks an RLock acquired with ErrOwnerDead as repaired, so
// that it works normally after its last Release. Only the owner may call
// it; others get ErrNotInconsistent.
func (r *RLock) Consistent() error {
	if !r.Owned() {
		return ErrNotInconsistent
	}
	return r.m.Consistent()
}

// State is a snapshot of an RLock, for inspection.
type State struct {
	Held           bool
	HolderSlot     int    // the owner's slot in the process registry
	HolderPid      int    // its pid, as it saw itself (display only; 0: unknown)
	HolderAlive    bool   // whether the registry says the owner lives
	HolderGoid     uint64 // runtime id of the owning goroutine in HolderPid
	Level          int
	Waiters        bool
	Inconsistent   bool // held after an owner died; not yet Consistent
	NotRecoverable bool
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps while acquiring, wakes made by the last Release,
// AcquireTimeout calls that ran out, takeovers from a dead owner, and
// acquires whose spin ended in sleep. Only slow paths count: an
// uncontended or recursive Acquire touches no counter.
func (r *RLock) Stats() stats.Stats { return r.m.Stats() }

// State returns a snapshot of the RLock. It asks the process registry
// whether the holder is alive (one fcntl). The fields are read one by one while others may
// change them.
func (r *RLock) State() State {
	s := r.m.Load()
	st := State{Held: s.Held, Waiters: s.Waiters, Inconsistent: s.Inconsistent, NotRecoverable: s.NotRecoverable}
	if s.Held {
		reg := r.m.Registry()
		st.HolderSlot = int(s.Holder.Slot)
		st.HolderPid = reg.Pid(s.Holder)
		st.HolderAlive = reg.Alive(s.Holder)
		st.HolderGoid = atomic.LoadUint64(r.owner)
		st.Level = int(atomic.LoadUint32(r.extra)) + 1
	}
	return st
}

// Locker returns a sync.Locker whose Lock and Unlock acquire and release
// r. They panic on any error. A Lock that finds the previous owner died
// holding the RLock (ErrOwnerDead) releases it unrepaired, which makes it
// not recoverable for every process, and panics: code that can repair the
// guarded state uses LockerRepair, or Acquire.
func (r *RLock) Locker() sync.Locker { return locker{r: r} }

// LockerRepair is Locker with a repair step, as lock.Lock's LockerRepair:
// when Lock finds that the previous owner died holding the RLock, it calls
// repair; nil marks the RLock consistent, an error releases it unrepaired
// (not recoverable) and panics.
func (r *RLock) LockerRepair(repair func() error) sync.Locker {
	return locker{r: r, repair: repair}
}

type locker struct {
	r      *RLock
	repair func() error
}

func (k locker) Lock() {
	err := k.r.Acquire(context.Background())
	switch err {
	case nil:
		return
	case ErrOwnerDead:
		err = errors.New("no repair function (use LockerRepair or Acquire)")
		if k.repair != nil {
			if err = k.repair(); err == nil {
				if err = k.r.Consistent(); err == nil {
					return
				}
			}
		}
		k.r.Release() // unrepaired: not recoverable, for everyone
		panic(fmt.Sprintf("rlock: %v, and the state it guards was not repaired: %v", ErrOwnerDead, err))
	}
	panic("rlock: " + err.Error())
}

func (k locker) Unlock() {
	if err := k.r.Release(); err != nil {
		panic("rlock: " + err.Error())
	}
}
