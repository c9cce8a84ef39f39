package value

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

// Errors.
var (
	// ErrNoLock is returned by Open and Attach of a Value that was created
	// without its own lock (with Options.Lock, or as a RawValue) when no
	// Options.Lock is given: the creator's lock must be shared explicitly.
	ErrNoLock = errors.New("value: created without its own lock; pass Options.Lock")
	// ErrUnsupportedType is returned (wrapped) for a T that another process
	// cannot read: one with pointers, slices, maps, strings, interfaces,
	// channels or functions in it.
	ErrUnsupportedType = typeinfo.ErrUnsupportedType
	// ErrOwnerDead is returned (wrapped) by Update and Err while the Value
	// is marked inconsistent: a process died holding its lock, so what it
	// guarded with the lock may be half done. The same value as
	// lock.ErrOwnerDead and rlock.ErrOwnerDead. Repair, then call
	// Consistent.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotInconsistent is returned by Consistent on a Value that is not
	// marked inconsistent; the same value as lock.ErrNotInconsistent.
	ErrNotInconsistent = robust.ErrNotInconsistent
)

// errTorn is what Update and Err return while the Value is marked
// inconsistent; made once, so that reporting it does not allocate.
var errTorn = fmt.Errorf("value: a process died holding the lock; inconsistent until Consistent is called: %w", ErrOwnerDead)

// Locker is the lock a Value exposes (Python's get_lock()) and that Update
// takes, with mpipc's three blocking forms. *rlock.RLock implements it (a
// Value's and an Array's own lock is one, as Python's default lock is an
// RLock), and so does *lock.Lock. A Locker that also has a Consistent()
// error method is marked consistent by Update when its Acquire reports
// that the previous holder died, and the Value is marked inconsistent
// instead (see Value.Update).
type Locker interface {
	Acquire(ctx context.Context) error
	AcquireTimeout(d time.Duration) (bool, error)
	TryAcquire() (bool, error)
	Release() error
}

type consistenter interface{ Consistent() error }

// Options configure a Value or RawValue. The zero value (or nil) means the
// defaults.
type Options struct {
	// Lock is the lock that Update takes and Lock returns, for a Value
	// sharing a lock with other objects (a *lock.Lock, *rlock.RLock, or
	// any Locker living in the same shared memory). Default: the Value's
	// own rlock.RLock, placed inside the Value. Every process must pass the
	// same lock. Ignored by RawValue.
	Lock Locker
	// CheckInterval is how often a waiter checks whether the holder of
	// the Value's own lock, or of the writer lock of a T wider than 8
	// bytes, is alive. Default 100 ms.
	CheckInterval time.Duration
	// Registry names the processes that may hold the Value's own lock and
	// writer lock, so that a dead holder can be told from a live one.
	// Create and Open use the segment's when nil. For Init and Attach, nil
	// means no registry: a dead holder's lock is then never taken over,
	// and a wide Store waits for it until its context is done (see
	// shm.Registry).
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

func (o *Options) lock() Locker {
	if o == nil {
		return nil
	}
	return o.Lock
}

func (o *Options) check() time.Duration {
	if o == nil {
		return 0
	}
	return o.CheckInterval
}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Value is a T shared between processes, with a lock: Python's
// multiprocessing.Value. Obtain one with Create or Open (in a segment) or
// Init or Attach (in memory you own); the zero Value is not usable.
//
// T is any fixed-size type without pointers (see package
// internal/typeinfo): numbers, bool, and arrays and structs of them.
//
// Load, Store, Swap, CompareAndSwap and Add are atomic on their own and
// never take the lock: for T of at most 8 bytes each is one atomic
// instruction (or a compare-and-swap loop for Add on numbers other than
// 4- and 8-byte integers), and for a wider T, Load copies a consistent
// snapshot without blocking writers. Update is the read-modify-write that
// also takes the lock, so that it waits for a process that holds the lock
// to update several objects together.
//
// Every write synchronizes before the Load that observes it, in any
// process mapping the memory. A Value handle must not be copied after
// first use; it is safe for concurrent use by many goroutines.
type Value[T any] struct {
	_    noCopy
	c    cell[T]
	lk   Locker
	own  *rlock.RLock
	mine bool // the lock is the Value's own
}

// Init initializes a Value holding initial in mem (at least SizeOf[T]()
// bytes, 8-byte aligned; Align recommended) and returns a handle on it.
// Unless opts.Lock is set, the Value gets its own lock. Nothing else may
// use mem while Init runs.
func Init[T any](mem []byte, initial T, opts *Options) (*Value[T], error) {
	info, err := typeOf[T]()
	if err != nil {
		return nil, err
	}
	v := &Value[T]{lk: opts.lock()}
	var flags uint32
	if v.lk == nil {
		flags = flagOwn
	}
	if err := v.c.init(mem, info, initial, flags, opts); err != nil {
		return nil, err
	}
	if v.lk == nil {
		own, err := rlock.Init(mem[ownLockOff:headerSize], &rlock.Options{CheckInterval: opts.check(), Registry: opts.registry()})
		if err != nil {
			return nil, fmt.Errorf("value: own lock: %w", err)
		}
		v.own, v.lk, v.mine = own, own, true
	}
	publish(mem)
	return v, nil
}

// Attach returns a handle on a Value[T] that Init set up in mem, possibly
// in another process. It fails with shm.ErrTypeMismatch if it was created
// with another element type, shm.ErrCorrupt if mem does not hold a Value,
// and ErrNoLock if it has no own lock and opts.Lock is nil.
func Attach[T any](mem []byte, opts *Options) (*Value[T], error) {
	info, err := typeOf[T]()
	if err != nil {
		return nil, err
	}
	v := &Value[T]{lk: opts.lock()}
	flags, err := v.c.attach(mem, info, opts)
	if err != nil {
		return nil, err
	}
	if v.lk == nil {
		if flags&flagOwn == 0 {
			return nil, ErrNoLock
		}
		own, err := rlock.Attach(mem[ownLockOff:headerSize], &rlock.Options{CheckInterval: opts.check(), Registry: opts.registry()})
		if err != nil {
			return nil, fmt.Errorf("value: own lock: %w", err)
		}
		v.own, v.lk, v.mine = own, own, true
	}
	return v, nil
}

func spec[T any](name string) (shm.Spec, typeinfo.Info, error) {
	info, err := typeOf[T]()
	if err != nil {
		return shm.Spec{}, info, err
	}
	size, _ := layout(info)
	return shm.Spec{Name: name, Kind: shm.KindValue, KindVersion: Version,
		Fingerprint: info.Fingerprint, Size: int64(size)}, info, nil
}

// create allocates the object named name in seg and initializes it with
// init; the handle keeps the mapping (shm.Keep).
func create[T, H any](seg *shm.Segment, name string, init func([]byte) (*H, error)) (*H, error) {
	var h *H
	sp, _, err := spec[T](name)
	if err != nil {
		return nil, err
	}
	mem, err := seg.Alloc(sp, func(mem []byte) (err error) {
		h, err = init(mem)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("value: creating %q: %w", name, err)
	}
	shm.Keep(seg, h, mem)
	return h, nil
}

// open finds the object named name in seg (kind and type checked) and
// attaches to it with attach; the handle keeps the mapping (shm.Keep).
func open[T, H any](seg *shm.Segment, name string, attach func([]byte) (*H, error)) (*H, error) {
	sp, _, err := spec[T](name)
	if err != nil {
		return nil, err
	}
	mem, err := seg.Lookup(sp)
	if err != nil {
		return nil, fmt.Errorf("value: opening %q: %w", name, err)
	}
	h, err := attach(mem)
	if err == nil {
		shm.Keep(seg, h, mem)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// Create places a new Value named name holding initial in seg. It fails
// with shm.ErrExist if the name is taken, and with an error wrapping
// typeinfo.ErrUnsupportedType if T cannot be shared.
func Create[T any](seg *shm.Segment, name string, initial T, opts *Options) (*Value[T], error) {
	opts = opts.in(seg)
	return create[T](seg, name, func(mem []byte) (*Value[T], error) { return Init(mem, initial, opts) })
}

// Open attaches to the Value[T] named name in seg. It fails with
// shm.ErrTypeMismatch if the Value holds another type.
func Open[T any](seg *shm.Segment, name string, opts *Options) (*Value[T], error) {
	opts = opts.in(seg)
	return open[T](seg, name, func(mem []byte) (*Value[T], error) { return Attach[T](mem, opts) })
}

// OpenOrCreate opens the Value[T] (holding initial if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate[T any](seg *shm.Segment, name string, initial T, opts *Options) (*Value[T], error) {
	return shm.OrOpen(func() (*Value[T], error) { return Create(seg, name, initial, opts) },
		func() (*Value[T], error) { return Open[T](seg, name, opts) })
}

// Load returns the value. It never blocks on the lock or on a writer.
func (v *Value[T]) Load() T { return v.c.load() }

// Store sets the value.
func (v *Value[T]) Store(x T) { v.c.store(x) }

// Swap sets the value to x and returns the previous one.
func (v *Value[T]) Swap(x T) T { return v.c.swap(x) }

// CompareAndSwap sets the value to new if it equals old and reports
// whether it did. Values are compared bytewise, padding excluded: floats
// compare by bits (NaN can equal NaN, -0 differs from +0).
func (v *Value[T]) CompareAndSwap(old, new T) bool { return v.c.compareAndSwap(old, new) }

// Add adds delta and returns the new value: Python's
// "with v.get_lock(): v.value += delta", in one atomic instruction when T
// is a 4- or 8-byte integer, and a compare-and-swap loop for other
// numbers. Integers wrap around. Add panics if T is not a number.
func (v *Value[T]) Add(delta T) T { return v.c.add(delta) }

// Update takes the lock, applies fn to a copy of the value, stores the
// result and releases the lock, returning the new value. The
// read-modify-write is atomic also against Store, Add and friends called
// without the lock; for T of at most 8 bytes, fn runs in a
// compare-and-swap loop and may run more than once, so it must depend on
// its argument only. For a wider T, fn runs while holding the writer lock:
// keep it short.
//
// If the lock's previous holder died holding it, Update takes the lock
// over, marks the Value inconsistent (what the dead process did under the
// lock, to this Value and to anything else the lock guards, may be half
// done), applies fn all the same and returns the new value with an error
// wrapping ErrOwnerDead. Every later Update returns that error too, after
// applying fn, until a process repairs what the lock guards and calls
// Consistent. The Value itself is never half written (see the package
// documentation): the mark is about what the lock guards.
//
// Update returns an error without applying fn only when the lock cannot
// be acquired (ErrNotRecoverable, or a Locker's own error).
//
// With the default lock, an RLock, Update may be called by the goroutine
// that holds Lock(); with a non-recursive Options.Lock it deadlocks.
func (v *Value[T]) Update(fn func(*T)) (T, error) { return v.UpdateContext(context.Background(), fn) }

// UpdateContext is Update that gives up with ctx.Err(), without applying
// fn, when ctx is done before it holds the lock and, for a wide T, the
// writer lock (which a Store, Swap or CompareAndSwap holds while it writes,
// without the lock).
func (v *Value[T]) UpdateContext(ctx context.Context, fn func(*T)) (T, error) {
	if err := v.acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	x, err := v.c.updateBound(fn, bound{ctx: ctx})
	if err != nil {
		// ctx ended while a writer (a Store of a wide T, which does not
		// take the lock) held the writer lock: fn did not run.
		v.lk.Release()
		return x, err
	}
	// Read under the lock: a mark set by a taker is seen by every holder
	// after it.
	torn := atomic.LoadUint32(v.c.flags)&flagTorn != 0
	if err := v.lk.Release(); err != nil {
		return x, fmt.Errorf("value: releasing lock: %w", err)
	}
	if torn {
		return x, errTorn
	}
	return x, nil
}

// acquire takes the lock. When it takes the lock over from a dead holder,
// it marks the lock consistent (so that it stays usable) and the Value
// inconsistent (so that the death stays visible until Consistent).
func (v *Value[T]) acquire(ctx context.Context) error {
	err := v.lk.Acquire(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, robust.ErrOwnerDead) {
		return err
	}
	// Mark first, then repair the lock: a taker that dies in between
	// leaves the lock still owned by the dead, and the next taker marks
	// again (the mark is idempotent), so the death is never lost.
	atomic.OrUint32(v.c.flags, flagTorn)
	if c, ok := v.lk.(consistenter); ok {
		if cerr := c.Consistent(); cerr != nil {
			v.lk.Release()
			return fmt.Errorf("value: marking lock consistent: %w", cerr)
		}
	}
	return nil
}

// Err returns an error wrapping ErrOwnerDead while the Value is marked
// inconsistent (see Update), nil otherwise. Load, Store and the other
// methods that do not take the lock neither mark nor check it; a process
// that read what the lock guards under the lock and then sees Err return
// nil read nothing a dead holder left half done (the mark is set before
// the lock passes to anyone else).
func (v *Value[T]) Err() error {
	if atomic.LoadUint32(v.c.flags)&flagTorn != 0 {
		return errTorn
	}
	return nil
}

// Consistent marks the Value as repaired, after a process repaired what
// the lock guards: Update and Err return nil again. It returns
// ErrNotInconsistent if the Value is not marked inconsistent (for example
// because another process called Consistent first). Call it while holding
// Lock() if other processes may use the Value during the repair; it does
// not take the lock itself, so it may be called either way.
func (v *Value[T]) Consistent() error {
	for {
		f := atomic.LoadUint32(v.c.flags)
		if f&flagTorn == 0 {
			return ErrNotInconsistent
		}
		if atomic.CompareAndSwapUint32(v.c.flags, f, f&^flagTorn) {
			return nil
		}
	}
}

// Lock returns the Value's lock: its own, or Options.Lock.
func (v *Value[T]) Lock() Locker { return v.lk }

// State is a snapshot of a Value, for inspection.
type State struct {
	Size        int          // bytes of T
	Fingerprint uint64       // of T
	Type        string       // layout of T
	Writes      uint64       // completed writes, for T wider than 8 bytes (else 0)
	WriterHeld  bool         // a writer is between lock and publish (wide T)
	WriterSlot  int          // the writer's slot in the process registry
	WriterPid   int          // its pid, as it saw itself (display only)
	WriterAlive bool         // whether the registry says the writer lives
	OwnLock     bool         // the lock is the Value's own
	Lock        *rlock.State // the own lock's state, if OwnLock
	// Inconsistent: an Update took the lock over from a process that died
	// holding it, and nobody has called Consistent since (see Update).
	Inconsistent bool
}

func (c *cell[T]) state() State {
	st := State{Size: int(c.size), Fingerprint: c.info.Fingerprint, Type: c.info.Desc,
		Inconsistent: atomic.LoadUint32(c.flags)&flagTorn != 0}
	if c.op == opWide {
		st.Writes = atomic.LoadUint64(c.seq)
		s := c.wr.Load()
		st.WriterHeld = s.Held
		if s.Held {
			reg := c.wr.Registry()
			st.WriterSlot = int(s.Holder.Slot)
			st.WriterPid = reg.Pid(s.Holder)
			st.WriterAlive = reg.Alive(s.Holder)
		}
	}
	return st
}

// State returns a snapshot of the Value.
func (v *Value[T]) State() State {
	st := v.c.state()
	if v.mine {
		ls := v.own.State()
		st.OwnLock, st.Lock = true, &ls
	}
	return st
}

// RawValue is a T shared between processes without a lock: Python's
// multiprocessing.RawValue. Its Load, Store, Swap, CompareAndSwap, Add and
// Update are atomic just as a Value's (they never needed the lock); what
// it lacks is the lock for compound operations over several objects.
// Obtain one with CreateRaw, OpenRaw, InitRaw or AttachRaw. It may attach
// to a Value's memory (the lock is then ignored).
type RawValue[T any] struct {
	_ noCopy
	c cell[T]
}

// InitRaw initializes a RawValue holding initial in mem (SizeOf[T]() bytes,
// 8-byte aligned). Only opts.CheckInterval is used.
func InitRaw[T any](mem []byte, initial T, opts *Options) (*RawValue[T], error) {
	info, err := typeOf[T]()
	if err != nil {
		return nil, err
	}
	v := &RawValue[T]{}
	if err := v.c.init(mem, info, initial, 0, opts); err != nil {
		return nil, err
	}
	publish(mem)
	return v, nil
}

// AttachRaw returns a handle on a RawValue[T] (or Value[T]) in mem.
func AttachRaw[T any](mem []byte, opts *Options) (*RawValue[T], error) {
	info, err := typeOf[T]()
	if err != nil {
		return nil, err
	}
	v := &RawValue[T]{}
	if _, err := v.c.attach(mem, info, opts); err != nil {
		return nil, err
	}
	return v, nil
}

// CreateRaw places a new RawValue named name in seg.
func CreateRaw[T any](seg *shm.Segment, name string, initial T, opts *Options) (*RawValue[T], error) {
	opts = opts.in(seg)
	return create[T](seg, name, func(mem []byte) (*RawValue[T], error) { return InitRaw(mem, initial, opts) })
}

// OpenRaw attaches to the RawValue[T] (or Value[T]) named name in seg.
func OpenRaw[T any](seg *shm.Segment, name string, opts *Options) (*RawValue[T], error) {
	opts = opts.in(seg)
	return open[T](seg, name, func(mem []byte) (*RawValue[T], error) { return AttachRaw[T](mem, opts) })
}

// OpenOrCreateRaw opens the RawValue[T] (holding initial if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreateRaw[T any](seg *shm.Segment, name string, initial T, opts *Options) (*RawValue[T], error) {
	return shm.OrOpen(func() (*RawValue[T], error) { return CreateRaw(seg, name, initial, opts) },
		func() (*RawValue[T], error) { return OpenRaw[T](seg, name, opts) })
}

// Load returns the value. It never blocks on a writer.
func (v *RawValue[T]) Load() T { return v.c.load() }

// Store sets the value.
func (v *RawValue[T]) Store(x T) { v.c.store(x) }

// Swap sets the value to x and returns the previous one.
func (v *RawValue[T]) Swap(x T) T { return v.c.swap(x) }

// CompareAndSwap is Value.CompareAndSwap.
func (v *RawValue[T]) CompareAndSwap(old, new T) bool { return v.c.compareAndSwap(old, new) }

// Add is Value.Add.
func (v *RawValue[T]) Add(delta T) T { return v.c.add(delta) }

// Update applies fn atomically and returns the new value, as Value.Update
// does but without a lock.
func (v *RawValue[T]) Update(fn func(*T)) T { return v.c.update(fn) }

// State returns a snapshot of the RawValue.
func (v *RawValue[T]) State() State { return v.c.state() }

// LoadBytes returns the value of the Value or RawValue named name in seg,
// read as Load reads it (never torn, without the lock), as the bytes of
// t's layout, for a tool that learns the element type t only at run time
// (mpipc stat -type) and would otherwise need one Value[T] compiled per T.
// t must be the recorded element type: another one fails with an error
// wrapping shm.ErrTypeMismatch that gives both sizes.
func LoadBytes(seg *shm.Segment, name string, t reflect.Type) ([]byte, error) {
	info, err := typeinfo.OfType(t)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	size, _ := layout(info)
	sp := shm.Spec{Name: name, Kind: shm.KindValue, KindVersion: Version, Fingerprint: info.Fingerprint, Size: int64(size)}
	mem, err := seg.Lookup(sp)
	if errors.Is(err, shm.ErrTypeMismatch) {
		return nil, mismatch(seg, sp, info)
	}
	if err != nil {
		return nil, fmt.Errorf("value: opening %q: %w", name, err)
	}
	defer seg.Release(mem) // the bytes are copied out before it
	var c cell[byte]       // T unused: loadInto works from info
	if _, err := c.attachAs(mem, info, t, (*Options)(nil).in(seg)); err != nil {
		return nil, err
	}
	b := make([]byte, info.Size)
	c.loadInto(b)
	return b, nil
}

// mismatch describes why the Value sp names is not of the type info
// describes: the recorded size and fingerprint against info's.
func mismatch(seg *shm.Segment, sp shm.Spec, info typeinfo.Info) error {
	objs, _ := seg.Objects()
	for _, o := range objs {
		if o.Name != sp.Name {
			continue
		}
		sp.Fingerprint, sp.Size = o.Fingerprint, 0
		if mem, err := seg.Lookup(sp); err == nil && len(mem) >= headerSize {
			defer seg.Release(mem)
			return fmt.Errorf("value: %q holds a type of %d bytes (fingerprint %#x), %s is %d bytes (fingerprint %#x): %w",
				sp.Name, atomic.LoadUint64(word64(mem, offSize)), o.Fingerprint, info.Desc, info.Size, info.Fingerprint, shm.ErrTypeMismatch)
		}
	}
	return fmt.Errorf("value: %q is not of type %s (%d bytes, fingerprint %#x): %w", sp.Name, info.Desc, info.Size, info.Fingerprint, shm.ErrTypeMismatch)
}
