package condition

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/release"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Condition (SizeOf(slots) bytes, little-endian,
// Align-aligned):
//
//	offset 0    uint32  magic "mpcv"
//	offset 4    uint32  layout version
//	offset 8    uint32  slots: size of the waiter table, 1..MaxSlots
//	offset 12   uint32  lock kind: 0 own RLock at offset 128, 1 Lock, 2 RLock
//	offset 16   uint32  reserved (zero; once a count of occupied slots,
//	                    which a kill could leave out of step with the bitmap)
//	offset 20   uint32  next waiter ticket                   (lock)
//	offset 24   uint32  notify sequence: Notify calls so far (lock)
//	offset 64   [48]byte name of the bound Lock or RLock in the segment,
//	                    NUL-padded (empty for Init and for an own RLock)
//	offset 128  own RLock (rlock.Size bytes), zero when the lock is external
//	offset 192  occupancy bitmap: one bit per slot, uint64 words,
//	            padded to a multiple of 64 bytes                 (lock)
//	then        slots, 64 bytes each (one cache line):
//	  +0  uint32  state: generation<<3 | slot state (the futex word)
//	  +4  uint32  ticket: FIFO order of waiters                  (lock)
//	  +8  uint64  owner process (registry identity, proc.ID.Pack) (lock)
//	  +16 uint32  notify sequence when the waiter registered     (lock)
//	  +20 uint32  notify sequence of the Notify that marked it
//
// Fields marked (lock) are written only by a holder of the Condition's
// lock, with release stores (package internal/release: a plain MOV on
// amd64, not a locked XCHG or Or that stalls on the line): the
// compare-and-swap of a Notify or the lock's release that follows each
// such store publishes it, and x86's and arm64's release stores keep
// their order, which crash recovery relies on. The state word is changed
// by the lock holder (register and free store it, notify swaps it), by
// its waiter (sleeping, withdrawn) and by a waiter that finds the slot's
// owner dead (withdrawn), all but register and free by compare-and-swap;
// nobody swaps a slot that register or free may store. The generation,
// bumped at each registration, keeps such a compare-and-swap from hitting
// a slot that was freed and taken again meanwhile.
const (
	// Align is the alignment a Condition needs (a cache line).
	Align = 64
	// Version is the layout version of a Condition.
	// Version 2: owner records name process registry slots, not pids.
	Version = 2
	// DefaultSlots is the waiter table size when Options.Slots is zero.
	DefaultSlots = 128
	// MaxSlots is the largest waiter table.
	MaxSlots = 1 << 16

	magic = 0x7663706d // "mpcv"

	offMagic   = 0
	offVersion = 4
	offSlots   = 8
	offKind    = 12
	offTicket  = 20
	offSeq     = 24
	offName    = 64
	nameLen    = 48
	offRLock   = 128
	offBitmap  = 192
	slotSize   = 64

	sOwner    = 8
	sTicket   = 4
	sRegSeq   = 16
	sNotified = 20
)

// Lock kinds (offset 12).
const (
	kindOwn   = 0
	kindLock  = 1
	kindRLock = 2
)

// Slot states: the low three bits of a slot's state word.
//
// A waiter registers (free → waiting) under the lock, releases the lock,
// spins while waiting, then announces that it sleeps (waiting → sleeping)
// and sleeps on the word. Notify, under the lock, marks the oldest waiting
// or sleeping slots notified, and makes the futex wake only for a sleeping
// one: a waiter still spinning costs its notifier no syscall. A waiter
// whose timeout or context ends first withdraws (sleeping → withdrawn); of
// a Notify and a withdrawal only one compare-and-swap wins, so a Notify
// either reaches a waiter that returns notified or passes over a withdrawn
// slot to the next waiter: a timed-out waiter never swallows a Notify. The
// waiter frees its slot (→ free, generation kept) once it holds the lock
// again.
const (
	stFree      = 0
	stWaiting   = 1 // registered, spinning
	stSleeping  = 2 // registered, may sleep in the kernel
	stNotified  = 3
	stWithdrawn = 4 // timed out, cancelled, or owner found dead
	stMask      = 7
	genOne      = 8 // the generation counts in the bits above stMask
)

// Errors. ErrOwnerDead and ErrNotRecoverable are the values of package
// lock, shared by every lock-like object of mpipc.
var (
	// ErrOwnerDead is returned, with the lock held, when Wait reacquired
	// the lock from an owner that died holding it. Repair the guarded
	// state and call the lock's Consistent.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotRecoverable is returned when the lock can never be acquired
	// again (see package lock); Wait then returns without the lock.
	ErrNotRecoverable = robust.ErrNotRecoverable
	// ErrNotOwner is returned by Wait, WaitFor and Notify when the caller
	// does not hold the lock (an RLock: the calling goroutine does not own
	// it; a Lock: nobody holds it), and by Release as the lock returns it.
	ErrNotOwner = errors.New("condition: lock not held by the caller")
	// ErrTooManyWaiters is returned by Wait when all Options.Slots waiter
	// slots are taken by waiters that are alive. Nothing changes.
	ErrTooManyWaiters = errors.New("condition: too many waiters (see Options.Slots)")
	// ErrLockType is returned when the lock given is neither a *lock.Lock
	// nor a *rlock.RLock, or when Attach is given a lock of another kind
	// than Init was (or a lock when Init created its own, or none when it
	// did not).
	ErrLockType = errors.New("condition: lock is not the kind the condition was made with")
)

// Locker is the lock a Condition is bound to: a *lock.Lock or a
// *rlock.RLock of this module.
type Locker interface {
	Acquire(ctx context.Context) error
	Release() error
}

// Options configure a Condition. The zero value (or nil) means the
// defaults.
type Options struct {
	// Slots is the size of the waiter table: how many goroutines, in all
	// processes together, may wait at once. Default DefaultSlots; at most
	// MaxSlots. Each slot takes 64 bytes. Ignored by Open and Attach.
	Slots int
	// CheckInterval is how often, while a waiter sleeps, its process's
	// liveness checker checks whether other waiters' processes died (to
	// pass on a Notify that reached a dead waiter), and how often a waiter
	// for the Condition's own RLock checks its owner. Default 100 ms.
	CheckInterval time.Duration
	// Registry names the processes whose goroutines wait and hold the
	// Condition's own RLock, so that dead ones can be told from live ones.
	// Create and Open use the segment's when nil. For Init and Attach, nil
	// means no registry: a dead waiter's slot is then never reclaimed and
	// a dead owner's lock never taken over (see shm.Registry).
	Registry *shm.Registry
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

func (o *Options) slots() int {
	if o == nil || o.Slots == 0 {
		return DefaultSlots
	}
	return o.Slots
}

func (o *Options) check() time.Duration {
	if o == nil || o.CheckInterval <= 0 {
		return robust.DefaultCheckInterval
	}
	return o.CheckInterval
}

// SizeOf returns the number of bytes a Condition with a waiter table of
// slots entries occupies (0 for the default).
func SizeOf(slots int) int {
	if slots == 0 {
		slots = DefaultSlots
	}
	words := (slots + 63) / 64
	bm := (words*8 + 63) &^ 63
	return offBitmap + bm + slots*slotSize
}

// Condition is a condition variable shared between processes: Python's
// multiprocessing.Condition. Obtain one with Create or Open (in a segment)
// or Init or Attach (in memory you own); the zero Condition is not usable.
//
// A Condition is bound to a lock (a Lock, or by default an RLock of its
// own). Wait and Notify must be called holding it. Wait releases the lock
// completely, whatever an RLock's level, sleeps until a Notify, its
// timeout or its context ends it, and reacquires the lock to the same
// level before it returns, in every case but ErrNotRecoverable.
//
// A Notify synchronizes before the return of the Wait it wakes, in any
// process mapping the memory (through the lock). A Condition handle must
// not be copied after first use; it is safe for concurrent use by many
// goroutines.
type Condition struct {
	_      noCopy
	mem    []byte
	nslots int
	bitmap []uint64
	l      *lock.Lock   // one of l and rl is set
	rl     *rlock.RLock //
	check  time.Duration
	reg    *proc.Registry // names the waiters' processes
	ctr    stats.Counters // this handle's slow-path events
	// sleepCheck is what the process's liveness checker runs once per
	// interval while a waiter of this handle sleeps (made once).
	sleepCheck func(first bool)
}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

func (c *Condition) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&c.mem[off])) }

func (c *Condition) slotOff(i int) int { return offBitmap + len(c.bitmap)*8 + i*slotSize }

func (c *Condition) state(i int) *uint32 { return c.u32(c.slotOff(i)) }

func (c *Condition) slotU32(i, f int) *uint32 { return c.u32(c.slotOff(i) + f) }

func (c *Condition) owner(i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&c.mem[c.slotOff(i)+sOwner]))
}

func checkMem(mem []byte, size int) error {
	if len(mem) < size {
		return fmt.Errorf("condition: memory is %d bytes, need %d: %w", len(mem), size, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("condition: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

func newHandle(mem []byte, nslots int, opts *Options) *Condition {
	words := (nslots + 63) / 64
	bm := (words*8 + 63) &^ 63
	c := &Condition{
		mem:    mem[:SizeOf(nslots):SizeOf(nslots)],
		nslots: nslots,
		bitmap: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[offBitmap])), bm/8),
		check:  opts.check(),
		reg:    proc.Or(opts.registry()),
	}
	c.sleepCheck = func(bool) {
		me := c.reg.Self()
		c.passOrphans(-1, me)
		// A notifier killed between marking a sleeping waiter and waking
		// it left the waiter asleep: wake this process's notified
		// waiters (one that is already awake ignores it).
		for i := range c.taken() {
			if atomic.LoadUint32(c.state(i))&stMask == stNotified && proc.Unpack(atomic.LoadUint64(c.owner(i))) == me {
				futex.WakeLocal(c.state(i))
			}
		}
	}
	return c
}

// bind sets the handle's lock from lk, returning the kind to store.
func (c *Condition) bind(lk Locker, opts *Options, init bool) (uint32, error) {
	switch l := lk.(type) {
	case nil:
		ro := &rlock.Options{CheckInterval: opts.check(), Registry: opts.registry()}
		var err error
		if init {
			c.rl, err = rlock.Init(c.mem[offRLock:offRLock+rlock.Size], ro)
		} else {
			c.rl, err = rlock.Attach(c.mem[offRLock:offRLock+rlock.Size], ro)
		}
		return kindOwn, err
	case *lock.Lock:
		if l != nil {
			c.l = l
			return kindLock, nil
		}
	case *rlock.RLock:
		if l != nil {
			c.rl = l
			return kindRLock, nil
		}
	}
	return 0, ErrLockType
}

// Init initializes a Condition in mem (at least SizeOf(opts.Slots) bytes,
// 8-byte aligned; Align recommended) and returns a handle on it. lk is the
// lock to bind: a *lock.Lock or *rlock.RLock, or nil for an RLock of the
// Condition's own, placed inside mem (Python's default). Nothing else may
// use mem while Init runs.
func Init(mem []byte, lk Locker, opts *Options) (*Condition, error) {
	n := opts.slots()
	if n < 1 || n > MaxSlots {
		return nil, fmt.Errorf("condition: %d slots, want 1..%d", n, MaxSlots)
	}
	if err := checkMem(mem, SizeOf(n)); err != nil {
		return nil, err
	}
	clear(mem[:SizeOf(n)])
	c := newHandle(mem, n, opts)
	kind, err := c.bind(lk, opts, true)
	if err != nil {
		return nil, err
	}
	atomic.StoreUint32(c.u32(offSlots), uint32(n))
	atomic.StoreUint32(c.u32(offKind), kind)
	atomic.StoreUint32(c.u32(offVersion), Version)
	atomic.StoreUint32(c.u32(offMagic), magic) // publishes the Condition
	return c, nil
}

// attach validates the header in mem and returns a handle without a lock.
func attach(mem []byte, opts *Options) (*Condition, uint32, error) {
	if err := checkMem(mem, offBitmap); err != nil {
		return nil, 0, err
	}
	u := func(off int) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[off]))) }
	if u(offMagic) != magic || u(offVersion) != Version {
		return nil, 0, fmt.Errorf("condition: no condition in memory: %w", shm.ErrCorrupt)
	}
	n := int(u(offSlots))
	if n < 1 || n > MaxSlots {
		return nil, 0, fmt.Errorf("condition: %d slots: %w", n, shm.ErrCorrupt)
	}
	if err := checkMem(mem, SizeOf(n)); err != nil {
		return nil, 0, err
	}
	kind := u(offKind)
	if kind > kindRLock {
		return nil, 0, fmt.Errorf("condition: lock kind %d: %w", kind, shm.ErrCorrupt)
	}
	return newHandle(mem, n, opts), kind, nil
}

// Attach returns a handle on a Condition that Init set up in mem, possibly
// in another process. lk must be a handle on the lock Init was given (nil
// if Init was given nil); a lock of another kind gives ErrLockType. It
// fails with shm.ErrCorrupt if mem does not hold a Condition.
func Attach(mem []byte, lk Locker, opts *Options) (*Condition, error) {
	c, kind, err := attach(mem, opts)
	if err != nil {
		return nil, err
	}
	if k := kindOf(lk); k != kind {
		return nil, fmt.Errorf("condition: made with lock kind %d, attached with %d: %w", kind, k, ErrLockType)
	}
	if _, err := c.bind(lk, opts, false); err != nil {
		return nil, err
	}
	return c, nil
}

// kindOf returns the lock kind lk would be stored as (kindRLock+1 for a
// lock of no supported type).
func kindOf(lk Locker) uint32 {
	switch l := lk.(type) {
	case nil:
		return kindOwn
	case *lock.Lock:
		if l != nil {
			return kindLock
		}
	case *rlock.RLock:
		if l != nil {
			return kindRLock
		}
	}
	return kindRLock + 1
}

func spec(name string, size int) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindCondition, KindVersion: Version, Size: int64(size)}
}

// openLock opens the Lock or RLock named name in seg.
func openLock(seg *shm.Segment, name string, opts *Options) (Locker, error) {
	check := opts.check()
	l, err := lock.Open(seg, name, &lock.Options{CheckInterval: check})
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, shm.ErrKindMismatch) {
		return nil, err
	}
	return rlock.Open(seg, name, &rlock.Options{CheckInterval: check})
}

// Create places a new Condition named name in seg, bound to the Lock or
// RLock named lockName in the same segment, or, when lockName is empty, to
// an RLock of its own inside the Condition's memory (Python's default:
// reach it through the Condition's Acquire and Release, or Lock). It fails
// with shm.ErrExist if name is taken and shm.ErrNotExist if lockName is
// not there.
func Create(seg *shm.Segment, name, lockName string, opts *Options) (*Condition, error) {
	opts = opts.in(seg)
	var lk Locker
	if lockName != "" {
		if len(lockName) >= nameLen {
			return nil, fmt.Errorf("condition: lock name %q: %w", lockName, shm.ErrInvalidName)
		}
		var err error
		if lk, err = openLock(seg, lockName, opts); err != nil {
			return nil, fmt.Errorf("condition: creating %q: %w", name, err)
		}
	}
	n := opts.slots()
	if n < 1 || n > MaxSlots {
		return nil, fmt.Errorf("condition: %d slots, want 1..%d", n, MaxSlots)
	}
	var c *Condition
	mem, err := seg.Alloc(spec(name, SizeOf(n)), func(mem []byte) (err error) {
		if c, err = Init(mem, lk, opts); err != nil {
			return err
		}
		copy(mem[offName:offName+nameLen], lockName)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("condition: creating %q: %w", name, err)
	}
	shm.Keep(seg, c, mem)
	stats.Publish(seg.Path(), name, shm.KindCondition.String(), &c.ctr)
	return c, nil
}

// Open attaches to the Condition named name in seg, and to the lock it is
// bound to.
func Open(seg *shm.Segment, name string, opts *Options) (*Condition, error) {
	opts = opts.in(seg)
	mem, err := seg.Lookup(spec(name, 0))
	if err != nil {
		return nil, fmt.Errorf("condition: opening %q: %w", name, err)
	}
	kept := false
	defer func() {
		if !kept {
			seg.Release(mem) // no handle uses it
		}
	}()
	c, kind, err := attach(mem, opts)
	if err != nil {
		return nil, err
	}
	var lk Locker
	if kind != kindOwn {
		raw := c.mem[offName : offName+nameLen]
		n := 0
		for n < len(raw) && raw[n] != 0 {
			n++
		}
		if n == 0 || n == len(raw) {
			return nil, fmt.Errorf("condition: opening %q: bad lock name: %w", name, shm.ErrCorrupt)
		}
		if lk, err = openLock(seg, string(raw[:n]), opts); err != nil {
			return nil, fmt.Errorf("condition: opening %q: lock %q: %w", name, raw[:n], err)
		}
	}
	k, err := c.bind(lk, opts, false)
	if err != nil {
		return nil, err
	}
	if k != kind {
		return nil, fmt.Errorf("condition: opening %q: %w", name, ErrLockType)
	}
	shm.Keep(seg, c, mem)
	stats.Publish(seg.Path(), name, shm.KindCondition.String(), &c.ctr)
	kept = true
	return c, nil
}

// OpenOrCreate opens the Condition (bound to lockName if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name, lockName string, opts *Options) (*Condition, error) {
	return shm.OrOpen(func() (*Condition, error) { return Create(seg, name, lockName, opts) },
		func() (*Condition, error) { return Open(seg, name, opts) })
}

// Lock returns the lock the Condition is bound to: a *lock.Lock or a
// *rlock.RLock.
func (c *Condition) Lock() Locker {
	if c.rl != nil {
		return c.rl
	}
	return c.l
}

// Acquire acquires the Condition's lock, as its Acquire does.
func (c *Condition) Acquire(ctx context.Context) error { return c.Lock().Acquire(ctx) }

// AcquireTimeout acquires the Condition's lock, as its AcquireTimeout does.
func (c *Condition) AcquireTimeout(d time.Duration) (bool, error) {
	if c.rl != nil {
		return c.rl.AcquireTimeout(d)
	}
	return c.l.AcquireTimeout(d)
}

// TryAcquire acquires the Condition's lock if that needs no wait.
func (c *Condition) TryAcquire() (bool, error) { return c.AcquireTimeout(0) }

// Release releases the Condition's lock, as its Release does. Releasing a
// lock the caller does not hold returns an error matching ErrNotOwner (and
// the lock's own error: lock.ErrNotLocked or rlock.ErrNotOwner).
func (c *Condition) Release() error {
	err := c.Lock().Release()
	if err != nil && (errors.Is(err, lock.ErrNotLocked) || errors.Is(err, rlock.ErrNotOwner)) {
		return fmt.Errorf("%w (%w)", ErrNotOwner, err)
	}
	return err
}

// owned reports whether the caller holds the lock: for an RLock, whether
// the calling goroutine owns it; for a Lock, whether anybody holds it (a
// Lock has no owner to check, as in Python).
func (c *Condition) owned() bool {
	if c.rl != nil {
		return c.rl.Owned()
	}
	return c.l.Held()
}

// releaseLock releases the lock completely and returns the level to
// restore.
func (c *Condition) releaseLock() (int, error) {
	if c.rl != nil {
		return c.rl.ReleaseAll()
	}
	return 1, c.l.Release()
}

// lockHeld reports whether anybody holds the lock, with one load.
func (c *Condition) lockHeld() bool {
	if c.rl != nil {
		return c.rl.Held()
	}
	return c.l.Held()
}

// awaitLock spins, looking at the lock word every iteration, until the
// lock looks free or the spin runs out. A notifier usually releases the
// lock within a microsecond (it notifies and then waits or releases), so
// a notified waiter that watches the lock takes it with one
// compare-and-swap as soon as it is free, instead of at the next look of
// the lock's own coarser spin (every few hundred nanoseconds) or after a
// sleep. It spins as a waiter does (futex.Spin), and not at all on one
// CPU, where the holder cannot release the lock while we spin.
func (c *Condition) awaitLock() {
	for k := 0; futex.Multicore() && c.lockHeld() && futex.Spin(k); k++ {
	}
}

// reacquire takes the lock back to level, not cancellable: Wait returns
// holding the lock.
func (c *Condition) reacquire(level int) error {
	if c.rl != nil {
		return c.rl.AcquireLevel(context.Background(), level)
	}
	return c.l.Acquire(context.Background())
}

// register takes a free slot for the calling waiter. The lock is held.
//
// Occupancy is the bitmap alone: a slot is taken while its bit is set. The
// slot's owner, ticket and sequence are written before the bit, and the
// state word, which publishes the slot to Notify, after it; a waiter
// killed anywhere in between leaves a set bit over a slot whose owner
// names it, and reclaim frees it when the table is next found full.
func (c *Condition) register() (int, uint32, error) {
	i := c.freeSlot()
	if i < 0 {
		c.reclaim()
		if i = c.freeSlot(); i < 0 {
			return 0, 0, ErrTooManyWaiters
		}
	}
	sw := c.state(i)
	old := atomic.LoadUint32(sw)
	s := (old&^stMask + genOne) | stWaiting
	release.Store64(c.owner(i), c.reg.SelfPacked())
	tk := c.u32(offTicket)
	t := atomic.LoadUint32(tk)
	release.Store32(tk, t+1)
	release.Store32(c.slotU32(i, sTicket), t)
	release.Store32(c.slotU32(i, sRegSeq), atomic.LoadUint32(c.u32(offSeq)))
	w := &c.bitmap[i/64]
	release.Store64(w, atomic.LoadUint64(w)|1<<(i%64)) // the slot is taken (see free)
	release.Store32(sw, s)                             // publishes the slot to Notify
	return i, s, nil
}

// freeSlot returns the first slot whose bitmap bit is clear, -1 if none.
func (c *Condition) freeSlot() int {
	for w := range c.bitmap {
		free := ^atomic.LoadUint64(&c.bitmap[w])
		if free != 0 {
			if j := w*64 + bits.TrailingZeros64(free); j < c.nslots {
				return j
			}
			return -1
		}
	}
	return -1
}

// taken yields the slots whose bitmap bit is set, in index order, reading
// each bitmap word once: a table of 128 slots with one waiter costs a
// look at one slot, not 128 bit tests. A bit past the last slot (a
// corrupt bitmap) ends the walk.
func (c *Condition) taken() iter.Seq[int] {
	return func(yield func(int) bool) {
		for w := range c.bitmap {
			occ := atomic.LoadUint64(&c.bitmap[w])
			for occ != 0 {
				i := w*64 + bits.TrailingZeros64(occ)
				occ &= occ - 1
				if i >= c.nslots || !yield(i) {
					return
				}
			}
		}
	}
}

// occupied returns the number of slots taken: the bits set in the bitmap.
func (c *Condition) occupied() int {
	n := 0
	for w := range c.bitmap {
		n += bits.OnesCount64(atomic.LoadUint64(&c.bitmap[w]))
	}
	return n
}

// anyOccupied reports whether any slot is taken (stops at the first set
// bit: Notify with nobody waiting reads one word for up to 64 slots).
func (c *Condition) anyOccupied() bool {
	for w := range c.bitmap {
		if atomic.LoadUint64(&c.bitmap[w]) != 0 {
			return true
		}
	}
	return false
}

// free returns slot i to the table. The lock is held. The state goes
// first, the bit last: a waiter killed in between leaves a set bit over a
// free slot that names it, which reclaim frees. Only a lock holder writes
// the bitmap, so clearing the bit is a load and a release store, not a
// locked And that would wait for the line, which the last registration
// pulled to another CPU.
func (c *Condition) free(i int) {
	sw := c.state(i)
	release.Store32(sw, atomic.LoadUint32(sw)&^stMask|stFree)
	w := &c.bitmap[i/64]
	release.Store64(w, atomic.LoadUint64(w)&^(1<<(i%64))) // the slot is free
}

// freeUnheld is free for a caller that does not hold the lock, where
// another may free a slot at once: the lock failed to release, or can
// never be held again. The bit is cleared with an atomic And.
func (c *Condition) freeUnheld(i int) {
	sw := c.state(i)
	release.Store32(sw, atomic.LoadUint32(sw)&^stMask|stFree)
	atomic.AndUint64(&c.bitmap[i/64], ^uint64(1<<(i%64))) // the slot is free
}

// reclaim frees the slots of dead processes; register calls it when the
// bitmap is full. A Notify that had reached a dead waiter is passed on
// first. The lock is held.
func (c *Condition) reclaim() {
	self := c.reg.Self()
	c.passOrphans(-1, self)
	for i := range c.taken() {
		o := proc.Unpack(atomic.LoadUint64(c.owner(i)))
		if o != self && !c.reg.Alive(o) {
			c.free(i)
		}
	}
}

// waiting reports whether slot state s may be notified.
func waiting(s uint32) bool { st := s & stMask; return st == stWaiting || st == stSleeping }

// mark notifies slot i, whose state was s, as part of the Notify numbered
// seq, and reports whether it won the slot.
func (c *Condition) mark(i int, s uint32, seq uint32) bool {
	sw := c.state(i)
	release.Store32(c.slotU32(i, sNotified), seq)
	if !atomic.CompareAndSwapUint32(sw, s, s&^stMask|stNotified) {
		return false
	}
	if s&stMask == stSleeping {
		c.ctr.Wake()
		futex.Wake(sw, 1)
	}
	return true
}

// oldest returns the waiting slot with the lowest ticket (compared by
// signed difference, so tickets may wrap), considering only waiters that
// registered before the Notify numbered before when filter is set; -1 if
// there is none.
func (c *Condition) oldest(filter bool, before uint32) (int, uint32) {
	best, bestS, bestT := -1, uint32(0), uint32(0)
	for i := range c.taken() {
		s := atomic.LoadUint32(c.state(i))
		if !waiting(s) {
			continue
		}
		if filter && int32(before-atomic.LoadUint32(c.slotU32(i, sRegSeq))) <= 0 {
			continue
		}
		t := atomic.LoadUint32(c.slotU32(i, sTicket))
		if best < 0 || int32(t-bestT) < 0 {
			best, bestS, bestT = i, s, t
		}
	}
	return best, bestS
}

// notifyLocked wakes up to n of the oldest waiters. The lock is held.
func (c *Condition) notifyLocked(n int) {
	occ := c.occupied()
	if occ == 0 || n <= 0 {
		return
	}
	sq := c.u32(offSeq)
	seq := atomic.LoadUint32(sq) + 1
	release.Store32(sq, seq)
	if n >= occ {
		// Every waiter: order does not matter.
		for i := range c.taken() {
			for {
				s := atomic.LoadUint32(c.state(i))
				if !waiting(s) || c.mark(i, s, seq) {
					break
				}
			}
		}
		return
	}
	for n > 0 {
		i, s := c.oldest(false, 0)
		if i < 0 {
			return
		}
		if c.mark(i, s, seq) {
			n--
		} // else it withdrew or went to sleep meanwhile: look again
	}
}

// Notify wakes up to n goroutines waiting on the Condition, in any
// process, oldest first. The caller must hold the lock (else ErrNotOwner,
// and nothing changes). A Notify with nobody waiting does nothing and is
// not remembered for a later Wait.
func (c *Condition) Notify(n int) error {
	if !c.owned() {
		return ErrNotOwner
	}
	if n > 0 && c.anyOccupied() {
		c.notifyLocked(n)
	}
	return nil
}

// NotifyAll wakes every goroutine waiting on the Condition, in any process.
// The caller must hold the lock (else ErrNotOwner).
func (c *Condition) NotifyAll() error { return c.Notify(MaxSlots) }

// outcome of a wait.
const (
	notified = iota
	timedOut
	cancelled
)

// Wait releases the lock, waits until a Notify wakes it or ctx is done
// (nil: never), and reacquires the lock to the level it had before
// returning. It returns nil when notified, and ctx.Err() when ctx ended
// first; ErrOwnerDead when the lock came back from an owner that died
// (held: repair and call its Consistent); ErrNotRecoverable (not held);
// ErrNotOwner if the caller does not hold the lock; ErrTooManyWaiters if
// the waiter table is full. Wait never returns because of a spurious
// wakeup.
func (c *Condition) Wait(ctx context.Context) error {
	_, err := c.wait(ctx, time.Time{})
	return err
}

// WaitTimeout is Wait with a timeout: it reports whether it was notified
// (false: d passed first). A d of zero or less returns false at once,
// without releasing the lock (no Notify can reach a waiter that never
// released it). Errors are as for Wait.
func (c *Condition) WaitTimeout(d time.Duration) (notified bool, err error) {
	if d <= 0 {
		if !c.owned() {
			return false, ErrNotOwner
		}
		return false, nil
	}
	return c.wait(context.Background(), futex.After(d))
}

func (c *Condition) wait(ctx context.Context, deadline time.Time) (bool, error) {
	if !c.owned() {
		return false, ErrNotOwner
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
	i, s, err := c.register()
	if err != nil {
		return false, err
	}
	level, err := c.releaseLock()
	if err != nil {
		c.freeUnheld(i)
		return false, err
	}
	out, cerr := c.sleep(ctx, i, s, deadline)
	if out == notified {
		c.awaitLock()
	}
	err = c.reacquire(level)
	if err == nil || errors.Is(err, ErrOwnerDead) {
		c.free(i)
	} else {
		c.freeUnheld(i)
	}
	switch {
	case err != nil: // ErrOwnerDead (held) or ErrNotRecoverable
		return out == notified, err
	case out == cancelled:
		return false, cerr
	}
	return out == notified, nil
}

// sleep waits, without the lock, for slot i (registered with state s) to
// be notified, the deadline to pass or ctx to end.
func (c *Condition) sleep(ctx context.Context, i int, s uint32, deadline time.Time) (int, error) {
	sw := c.state(i)
	gen := s &^ stMask
	// Spin first (futex.Spin: the full budget, about a sleep and a wake,
	// unless spins keep failing).
	for k := 0; ; k++ {
		if atomic.LoadUint32(sw) != s {
			if k > 0 {
				futex.SpinDone(true)
			}
			return notified, nil
		}
		if !futex.Spin(k) {
			break
		}
	}
	futex.SpinDone(false)
	spun := true
	sleeping := gen | stSleeping
	if !atomic.CompareAndSwapUint32(sw, s, sleeping) {
		return notified, nil // only a Notify moves a live waiter's slot
	}
	// A waiter asleep for a whole check interval looks for dead waiters
	// itself once (passOrphans), then leaves that to the process's
	// checker, which looks for all of this handle's sleepers once per
	// interval and wakes a sleeper whose Notify came without its wake
	// (sleepCheck): a long wait wakes only when its slot changes or at
	// its own deadline; a short one does not take the checker's mutex.
	check := futex.After(c.check)
	watched := false
	defer func() {
		if watched {
			robust.UnwatchFunc(c)
		}
	}()
	for {
		wake := deadline
		if !watched && (wake.IsZero() || check.Before(wake)) {
			wake = check
		}
		c.ctr.Sleep(&spun)
		err := futex.Wait(ctx, sw, sleeping, wake)
		if atomic.LoadUint32(sw) != sleeping {
			return notified, nil
		}
		if err == nil {
			continue // spurious: never seen by the caller
		}
		out := cancelled
		if err == futex.ErrTimeout {
			now := time.Now()
			if deadline.IsZero() || now.Before(deadline) {
				if !watched && !now.Before(check) {
					c.passOrphans(i, c.reg.Self())
					robust.WatchFunc(c, c.sleepCheck, c.check)
					watched = true
				}
				continue // sleep again
			}
			out, err = timedOut, nil
		}
		if atomic.CompareAndSwapUint32(sw, sleeping, gen|stWithdrawn) {
			if out == timedOut {
				c.ctr.Timeout()
			}
			return out, err
		}
		return notified, nil // the Notify won the race: it is ours
	}
}

// passOrphans looks for waiters whose processes died: it withdraws the
// slots of those still waiting, so that no Notify is spent on them, and
// passes each Notify that had reached one to the oldest live waiter that
// was already waiting when it was made. self is the caller's slot (-1 if
// it has none). It runs without the lock (by a sleeping waiter) or with it
// (reclaim); every change is a compare-and-swap on a state word that
// includes the slot's generation.
func (c *Condition) passOrphans(self int, me proc.ID) {
	var orphans [16]uint32 // notify sequences of Notifies to pass on
	n := 0
	for i := range c.taken() {
		if i == self {
			continue
		}
		s := atomic.LoadUint32(c.state(i))
		st := s & stMask
		if st != stWaiting && st != stSleeping && st != stNotified {
			continue
		}
		o := proc.Unpack(atomic.LoadUint64(c.owner(i)))
		if o == me || c.reg.Alive(o) {
			continue
		}
		if st == stNotified {
			if n == len(orphans) {
				continue // the next pass takes it
			}
			seq := atomic.LoadUint32(c.slotU32(i, sNotified))
			if atomic.CompareAndSwapUint32(c.state(i), s, s&^stMask|stWithdrawn) {
				orphans[n] = seq
				n++
			}
			continue
		}
		atomic.CompareAndSwapUint32(c.state(i), s, s&^stMask|stWithdrawn)
	}
	for _, seq := range orphans[:n] {
		for {
			j, s := c.oldest(true, seq)
			if j < 0 || c.mark(j, s, seq) {
				break
			}
		}
	}
}

// WaitFor waits until pred returns true, as Python's wait_for: it calls
// pred with the lock held, and Wait while it returns false. It returns
// pred's last value; err is ctx.Err() if ctx ended while pred was still
// false, or Wait's error.
func (c *Condition) WaitFor(ctx context.Context, pred func() bool) (bool, error) {
	if !c.owned() {
		return false, ErrNotOwner
	}
	for !pred() {
		if err := c.Wait(ctx); err != nil {
			if ctx != nil && err == ctx.Err() && pred() {
				return true, nil
			}
			return false, err
		}
	}
	return true, nil
}

// WaitForTimeout is WaitFor with a timeout d for the whole call: it
// returns pred's last value, false if d passed while it was false. A d of
// zero or less evaluates pred once.
func (c *Condition) WaitForTimeout(d time.Duration, pred func() bool) (bool, error) {
	if !c.owned() {
		return false, ErrNotOwner
	}
	deadline := futex.After(d)
	r := pred()
	for !r {
		rem := time.Until(deadline)
		if rem <= 0 {
			break
		}
		if _, err := c.WaitTimeout(rem); err != nil {
			return false, err
		}
		r = pred()
	}
	return r, nil
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps in Wait, wakes made by Notify, Waits that timed
// out, and waits whose spin ended in sleep. The lock's own events
// (reacquiring it after a Wait, a dead holder) count on the lock's handle.
func (c *Condition) Stats() stats.Stats { return c.ctr.Load() }

// State is a snapshot of a Condition and its lock, for inspection.
type State struct {
	Slots       int  // size of the waiter table
	Waiters     int  // goroutines waiting for a Notify
	Notified    int  // notified, not yet returned from Wait
	Held        bool // the lock
	HolderPid   int
	HolderAlive bool
	Level       int // an RLock's level; 1 for a held Lock
}

// State returns a snapshot, reading the fields one by one while others may
// change them. It asks the process registry whether the lock's holder is
// alive.
func (c *Condition) State() State {
	st := State{Slots: c.nslots}
	for i := range c.taken() {
		switch s := atomic.LoadUint32(c.state(i)); {
		case waiting(s):
			st.Waiters++
		case s&stMask == stNotified:
			st.Notified++
		}
	}
	if c.rl != nil {
		ls := c.rl.State()
		st.Held, st.HolderPid, st.HolderAlive, st.Level = ls.Held, ls.HolderPid, ls.HolderAlive, ls.Level
	} else {
		ls := c.l.State()
		st.Held, st.HolderPid, st.HolderAlive = ls.Held, ls.HolderPid, ls.HolderAlive
		if ls.Held {
			st.Level = 1
		}
	}
	return st
}
