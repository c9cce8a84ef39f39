package array

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// Binary layout: see the package documentation.
const (
	// Version is the layout version of an Array.
	// Version 2: owner records name process registry slots, not pids.
	Version = 2
	// Align is the alignment an Array needs (a cache line).
	Align = 64

	magic      = 0x7261706d // "mpar"
	headerSize = 128
	ownLockOff = 64
	flagOwn    = 1 << 0
	// flagTorn marks an Array whose lock one of its methods took over from
	// a process that died holding it: the elements may be half written.
	// Set under the lock by the taker, cleared by Consistent.
	flagTorn = 1 << 1

	offMagic   = 0
	offVersion = 4
	offLen     = 8
	offElem    = 16
	offFP      = 24
	offFlags   = 32
	offAlign   = 36
)

// Errors.
var (
	// ErrNoLock is returned by Open and Attach of an Array created without
	// its own lock (with Options.Lock, or as a RawArray) when no
	// Options.Lock is given.
	ErrNoLock = errors.New("array: created without its own lock; pass Options.Lock")
	// ErrLength is returned for a negative length, or one whose size
	// overflows.
	ErrLength = errors.New("array: invalid length")
	// ErrTooLong is returned when an initializer, or a SetValue or SetRaw
	// argument, is longer than the array.
	ErrTooLong = errors.New("array: value longer than the array")
	// ErrRange is returned by SetSlice for indices outside the array, or
	// i > j.
	ErrRange = errors.New("array: index out of range")
	// ErrSliceLength is returned by SetSlice for a source whose length is
	// not j-i (Python's "can only assign ... of the same size").
	ErrSliceLength = errors.New("array: source length differs from the slice")
	// ErrUnsupportedType is returned (wrapped) for an element type another
	// process cannot read (pointers, slices, maps, strings, interfaces,
	// channels, functions); the same value as value.ErrUnsupportedType.
	ErrUnsupportedType = typeinfo.ErrUnsupportedType
	// ErrOwnerDead is returned (wrapped) by the methods that return errors,
	// and by Err, while the Array is marked inconsistent: a process died
	// holding its lock, perhaps in the middle of a write, so the elements
	// may be half written. The same value as lock.ErrOwnerDead. Repair,
	// then call Consistent.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotInconsistent is returned by Consistent on an Array that is not
	// marked inconsistent; the same value as lock.ErrNotInconsistent.
	ErrNotInconsistent = robust.ErrNotInconsistent
)

// errTorn is what the methods return while the Array is marked
// inconsistent; made once, so that reporting it does not allocate.
var errTorn = fmt.Errorf("array: a process died holding the lock; elements may be half written until Consistent is called: %w", ErrOwnerDead)

// Options configure an Array or RawArray. The zero value (or nil) means the
// defaults.
type Options struct {
	// Lock is the lock that Array operations take and Lock returns, for an
	// Array sharing a lock with other objects (a *lock.Lock, an
	// *rlock.RLock, a Value's lock). Default: the Array's own rlock.RLock,
	// placed inside the Array. Every process must pass the same lock.
	// Ignored by RawArray.
	Lock value.Locker
	// CheckInterval is how often a waiter for the own lock checks whether
	// its holder is alive. Default 100 ms.
	CheckInterval time.Duration
	// Registry names the processes that may hold the own lock, so that a
	// dead holder can be told from a live one. Create and Open use the
	// segment's when nil. For Init and Attach, nil means no registry: a
	// dead holder's lock is then never taken over (see shm.Registry).
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

func (o *Options) lock() value.Locker {
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

func w32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func w64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

func elemType[T any]() (typeinfo.Info, error) {
	info, err := typeinfo.Of[T]()
	if err != nil {
		return info, fmt.Errorf("array: %w", err)
	}
	return info, nil
}

// size returns the bytes an array of n elements of info needs.
func size(info typeinfo.Info, n int) (uintptr, error) {
	if n < 0 {
		return 0, fmt.Errorf("array: length %d: %w", n, ErrLength)
	}
	data := uint64(n) * uint64(info.Size)
	if n != 0 && data/uint64(n) != uint64(info.Size) || data > 1<<56 || data > math.MaxInt-headerSize-63 {
		return 0, fmt.Errorf("array: %d elements of %d bytes: %w", n, info.Size, ErrLength)
	}
	return uintptr(headerSize + (data+63)&^63), nil
}

// SizeOf returns the number of bytes an Array[T] or RawArray[T] of n
// elements occupies.
func SizeOf[T any](n int) (int, error) {
	info, err := elemType[T]()
	if err != nil {
		return 0, err
	}
	s, err := size(info, n)
	return int(s), err
}

// core is the element storage shared by Array and RawArray.
type core[T any] struct {
	mem   []byte
	s     []T // the elements, in shared memory
	info  typeinfo.Info
	flags *uint32 // the header's flags word (flagTorn changes at run time)
	bytes bool    // T is a one-byte integer: char-array methods work
}

func checkMem(mem []byte) error {
	if len(mem) < headerSize {
		return fmt.Errorf("array: memory is %d bytes, need at least %d: %w", len(mem), headerSize, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("array: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

func (c *core[T]) setup(mem []byte, info typeinfo.Info, n int, need uintptr) {
	c.mem = mem[:need:need]
	c.info = info
	c.flags = w32(mem, offFlags)
	// unsafe.Add, not &mem[headerSize]: a zero-length Array ends at the header.
	c.s = unsafe.Slice((*T)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), headerSize)), n)
	k := reflect.TypeFor[T]().Kind()
	c.bytes = k == reflect.Uint8 || k == reflect.Int8
}

// init writes the header and the elements (init, then zeros) into mem;
// the magic is published by the caller, last.
func (c *core[T]) init(mem []byte, n int, init []T, flags uint32) error {
	info, err := elemType[T]()
	if err != nil {
		return err
	}
	need, err := size(info, n)
	if err != nil {
		return err
	}
	if len(init) > n {
		return fmt.Errorf("array: %d initial values for %d elements: %w", len(init), n, ErrTooLong)
	}
	if err := checkMem(mem); err != nil {
		return err
	}
	if uintptr(len(mem)) < need {
		return fmt.Errorf("array: memory is %d bytes, %d elements of %s need %d: %w", len(mem), n, info.Desc, need, shm.ErrCorrupt)
	}
	clear(mem[:need])
	atomic.StoreUint32(w32(mem, offVersion), Version)
	atomic.StoreUint64(w64(mem, offLen), uint64(n))
	atomic.StoreUint64(w64(mem, offElem), uint64(info.Size))
	atomic.StoreUint64(w64(mem, offFP), info.Fingerprint)
	atomic.StoreUint32(w32(mem, offFlags), flags)
	atomic.StoreUint32(w32(mem, offAlign), uint32(info.Align))
	c.setup(mem, info, n, need)
	copy(c.s, init)
	return nil
}

func publish(mem []byte) { atomic.StoreUint32(w32(mem, offMagic), magic) }

// attach validates the header in mem for T and fills c; it returns the
// flags.
func (c *core[T]) attach(mem []byte) (uint32, error) {
	info, err := elemType[T]()
	if err != nil {
		return 0, err
	}
	flags, n, need, err := checkHeader(mem, info)
	if err != nil {
		return 0, err
	}
	c.setup(mem, info, n, need)
	return flags, nil
}

// checkHeader validates the header in mem for elements described by info
// and returns the flags, the length and the bytes the Array occupies.
func checkHeader(mem []byte, info typeinfo.Info) (flags uint32, n int, need uintptr, err error) {
	if err := checkMem(mem); err != nil {
		return 0, 0, 0, err
	}
	if atomic.LoadUint32(w32(mem, offMagic)) != magic {
		return 0, 0, 0, fmt.Errorf("array: no array in memory (bad magic): %w", shm.ErrCorrupt)
	}
	if v := atomic.LoadUint32(w32(mem, offVersion)); v != Version {
		return 0, 0, 0, fmt.Errorf("array: layout version %d, want %d: %w", v, Version, shm.ErrCorrupt)
	}
	es, fp := atomic.LoadUint64(w64(mem, offElem)), atomic.LoadUint64(w64(mem, offFP))
	if es != uint64(info.Size) || fp != info.Fingerprint {
		return 0, 0, 0, fmt.Errorf("array: stored elements are %d bytes with fingerprint %#x, %s is %d bytes with fingerprint %#x: %w",
			es, fp, info.Desc, info.Size, info.Fingerprint, shm.ErrTypeMismatch)
	}
	n64 := atomic.LoadUint64(w64(mem, offLen))
	if n64 > uint64(len(mem)) { // also rules out lengths that overflow int
		return 0, 0, 0, fmt.Errorf("array: length %d in %d bytes: %w", n64, len(mem), shm.ErrCorrupt)
	}
	need, err = size(info, int(n64))
	if err != nil || need > uintptr(len(mem)) {
		return 0, 0, 0, fmt.Errorf("array: %d elements of %s do not fit in %d bytes: %w", n64, info.Desc, len(mem), shm.ErrCorrupt)
	}
	flags = atomic.LoadUint32(w32(mem, offFlags))
	if flags&^(flagOwn|flagTorn) != 0 {
		return 0, 0, 0, fmt.Errorf("array: unknown flags %#x: %w", flags, shm.ErrCorrupt)
	}
	return flags, int(n64), need, nil
}

func spec(name string, info typeinfo.Info, size uintptr) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindArray, KindVersion: Version,
		Fingerprint: info.Fingerprint, Size: int64(size)}
}

// ---- unsynchronized element access, shared by both types ----

func (c *core[T]) copyOut(dst []T, from int) int { return copy(dst, c.s[from:]) }
func (c *core[T]) copyIn(src []T, at int) int    { return copy(c.s[at:], src) }

func (c *core[T]) slice(i, j int) []T {
	src := c.s[i:j]
	out := make([]T, len(src))
	copy(out, src)
	return out
}

func (c *core[T]) byteView(op string) []byte {
	if !c.bytes {
		panic("array: " + op + " needs a byte array, have " + reflect.TypeFor[T]().String())
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(c.s))), len(c.s))
}

func (c *core[T]) value() []byte {
	b := c.byteView("Value")
	for i, x := range b {
		if x == 0 {
			b = b[:i]
			break
		}
	}
	return append([]byte(nil), b...)
}

func (c *core[T]) setValue(v []byte) error {
	b := c.byteView("SetValue")
	if len(v) > len(b) {
		return fmt.Errorf("array: %d bytes for %d: %w", len(v), len(b), ErrTooLong)
	}
	copy(b, v)
	if len(v) < len(b) {
		b[len(v)] = 0
	}
	return nil
}

func (c *core[T]) raw() []byte { return append([]byte(nil), c.byteView("Raw")...) }

// setRaw copies v over the first len(v) bytes, leaving the rest as it was.
func (c *core[T]) setRaw(v []byte) error {
	b := c.byteView("SetRaw")
	if len(v) > len(b) {
		return fmt.Errorf("array: %d bytes for %d: %w", len(v), len(b), ErrTooLong)
	}
	copy(b, v)
	return nil
}

// checkSlice validates the target [i, j) and the source length of a
// slice assignment.
func (c *core[T]) checkSlice(i, j, n int) error {
	if i < 0 || j > len(c.s) || i > j {
		return fmt.Errorf("array: slice [%d:%d] of an array of %d: %w", i, j, len(c.s), ErrRange)
	}
	if n != j-i {
		return fmt.Errorf("array: %d elements for slice [%d:%d]: %w", n, i, j, ErrSliceLength)
	}
	return nil
}

// ---- Array ----

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Array is a fixed-length array of T shared between processes, with a
// lock: Python's multiprocessing.Array. Obtain one with Create or Open (in
// a segment) or Init or Attach (in memory you own); the zero Array is not
// usable.
//
// Every method that reads or writes elements holds the lock while it
// does, so a range copied out is a consistent snapshot and a range copied
// in appears at once; Update runs a function on a range under the lock.
// Index and slice bounds are checked before the lock is taken, with Go's
// own bounds checks: a bad index panics exactly as it would on a []T of
// length Len, and nothing outside the Array is ever touched.
//
// A lock release synchronizes before the next acquire, in any process, so
// what one process wrote under the lock is what the next one reads. An
// Array handle must not be copied after first use; it is safe for
// concurrent use by many goroutines.
type Array[T any] struct {
	_    noCopy
	c    core[T]
	lk   value.Locker
	own  *rlock.RLock
	mine bool
}

// Init initializes an Array of n elements in mem (at least SizeOf[T](n)
// bytes, 8-byte aligned; Align recommended): the first len(init) elements
// are copied from init (Python's Array('i', range(10))), the rest are zero
// (Array('d', 5)). Unless opts.Lock is set, the Array gets its own lock.
func Init[T any](mem []byte, n int, init []T, opts *Options) (*Array[T], error) {
	a := &Array[T]{lk: opts.lock()}
	var flags uint32
	if a.lk == nil {
		flags = flagOwn
	}
	if err := a.c.init(mem, n, init, flags); err != nil {
		return nil, err
	}
	if a.lk == nil {
		own, err := rlock.Init(mem[ownLockOff:headerSize], &rlock.Options{CheckInterval: opts.check(), Registry: opts.registry()})
		if err != nil {
			return nil, fmt.Errorf("array: own lock: %w", err)
		}
		a.own, a.lk, a.mine = own, own, true
	}
	publish(mem)
	return a, nil
}

// Attach returns a handle on an Array[T] that Init set up in mem, possibly
// in another process. It fails with shm.ErrTypeMismatch if the elements
// are of another type, shm.ErrCorrupt if mem does not hold an Array, and
// ErrNoLock if it has no own lock and opts.Lock is nil.
func Attach[T any](mem []byte, opts *Options) (*Array[T], error) {
	a := &Array[T]{lk: opts.lock()}
	flags, err := a.c.attach(mem)
	if err != nil {
		return nil, err
	}
	if a.lk == nil {
		if flags&flagOwn == 0 {
			return nil, ErrNoLock
		}
		own, err := rlock.Attach(mem[ownLockOff:headerSize], &rlock.Options{CheckInterval: opts.check(), Registry: opts.registry()})
		if err != nil {
			return nil, fmt.Errorf("array: own lock: %w", err)
		}
		a.own, a.lk, a.mine = own, own, true
	}
	return a, nil
}

// Create places a new Array of n elements named name in seg, initialized
// as Init does. It fails with shm.ErrExist if the name is taken.
func Create[T any](seg *shm.Segment, name string, n int, init []T, opts *Options) (*Array[T], error) {
	info, err := elemType[T]()
	if err != nil {
		return nil, err
	}
	sz, err := size(info, n)
	if err != nil {
		return nil, err
	}
	var a *Array[T]
	mem, err := seg.Alloc(spec(name, info, sz), func(mem []byte) (err error) {
		a, err = Init(mem, n, init, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("array: creating %q: %w", name, err)
	}
	shm.Keep(seg, a, mem)
	return a, nil
}

// Open attaches to the Array[T] named name in seg.
func Open[T any](seg *shm.Segment, name string, opts *Options) (*Array[T], error) {
	info, err := elemType[T]()
	if err != nil {
		return nil, err
	}
	mem, err := seg.Lookup(spec(name, info, 0))
	if err != nil {
		return nil, fmt.Errorf("array: opening %q: %w", name, err)
	}
	h, err := Attach[T](mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, h, mem)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the Array[T] (of n elements from init if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate[T any](seg *shm.Segment, name string, n int, init []T, opts *Options) (*Array[T], error) {
	return shm.OrOpen(func() (*Array[T], error) { return Create(seg, name, n, init, opts) },
		func() (*Array[T], error) { return Open[T](seg, name, opts) })
}

// acquire takes the lock. When it takes the lock over from a dead holder,
// it marks the lock consistent (so that it stays usable) and the Array
// inconsistent (so that the death stays visible until Consistent).
func (a *Array[T]) acquire(ctx context.Context) error {
	err := a.lk.Acquire(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, robust.ErrOwnerDead) {
		return err
	}
	// Mark first, then repair the lock: a taker that dies in between
	// leaves the lock still owned by the dead, and the next taker marks
	// again (the mark is idempotent), so the death is never lost.
	atomic.OrUint32(a.c.flags, flagTorn)
	if c, ok := a.lk.(interface{ Consistent() error }); ok {
		if cerr := c.Consistent(); cerr != nil {
			a.lk.Release()
			return fmt.Errorf("array: marking lock consistent: %w", cerr)
		}
	}
	return nil
}

// lock acquires the lock for an element method, which has no error to
// return. A lock taken over from a dead holder marks the Array
// inconsistent (see Err). If the lock cannot be acquired (not recoverable,
// or a word a corrupting peer wrote), the method goes ahead without it:
// the access is bounds-checked and stays inside the object, so the worst
// outcome is an unsynchronized read or write, never a crash. Use Update,
// which returns the error, when that matters.
func (a *Array[T]) lock() bool { return a.acquire(context.Background()) == nil }

// unlock releases what lock took. An error (a peer cleared the word under
// us) changes nothing for the caller: the access is done.
func (a *Array[T]) unlock(held bool) {
	if held {
		a.lk.Release()
	}
}

// torn returns errTorn if the Array is marked inconsistent. Called under
// the lock, it sees the mark of every taker before this holder.
func (c *core[T]) torn() error {
	if atomic.LoadUint32(c.flags)&flagTorn != 0 {
		return errTorn
	}
	return nil
}

// Err returns an error wrapping ErrOwnerDead while the Array is marked
// inconsistent, nil otherwise. An Array is marked when one of its methods
// takes its lock over from a process that died holding it (killed in the
// middle of a CopyIn, say), and stays marked, in every process, until
// Consistent is called. The methods that return an error report the mark
// themselves (Update, SetSlice, SetValue, SetRaw, CopyInContext,
// CopyOutContext); for those that cannot (At, Set, CopyIn, CopyOut, Slice,
// All, Value, Raw), call Err after them: if it returns nil, what they read or
// wrote was not half written by a dead process, since the mark is set
// before the lock passes to anyone else.
func (a *Array[T]) Err() error { return a.c.torn() }

// Consistent marks the Array as repaired, after a process rewrote the
// elements a dead holder may have left half written: Err and the methods
// return nil again. It returns ErrNotInconsistent if the Array is not
// marked (for example because another process called Consistent first).
// Call it while holding Lock() if other processes may use the Array during
// the repair; it does not take the lock itself, so it may be called
// either way.
func (a *Array[T]) Consistent() error {
	for {
		f := atomic.LoadUint32(a.c.flags)
		if f&flagTorn == 0 {
			return ErrNotInconsistent
		}
		if atomic.CompareAndSwapUint32(a.c.flags, f, f&^flagTorn) {
			return nil
		}
	}
}

// Len returns the number of elements.
func (a *Array[T]) Len() int { return len(a.c.s) }

// At returns element i. It panics if i is out of range.
func (a *Array[T]) At(i int) T {
	_ = a.c.s[i]
	held := a.lock()
	x := a.c.s[i]
	a.unlock(held)
	return x
}

// Set sets element i to x. It panics if i is out of range.
func (a *Array[T]) Set(i int, x T) {
	_ = a.c.s[i]
	held := a.lock()
	a.c.s[i] = x
	a.unlock(held)
}

// CopyOut copies elements from index from on into dst, as
// copy(dst, arr[from:]) would, and returns the number copied. It panics
// if from > Len.
func (a *Array[T]) CopyOut(dst []T, from int) int {
	_ = a.c.s[from:]
	held := a.lock()
	n := a.c.copyOut(dst, from)
	a.unlock(held)
	return n
}

// CopyIn copies src into the elements from index at on, as
// copy(arr[at:], src) would, and returns the number copied. It panics if
// at > Len.
func (a *Array[T]) CopyIn(src []T, at int) int {
	_ = a.c.s[at:]
	held := a.lock()
	n := a.c.copyIn(src, at)
	a.unlock(held)
	return n
}

// CopyOutContext is CopyOut that gives up with ctx.Err(), copying
// nothing, when ctx is done before the lock is acquired (a holder that is
// stopped, or slow), and that reports what Err reports: an error wrapping
// ErrOwnerDead, after copying, while the Array is marked inconsistent. It
// panics if from > Len.
func (a *Array[T]) CopyOutContext(ctx context.Context, dst []T, from int) (int, error) {
	_ = a.c.s[from:]
	if err := a.acquire(ctx); err != nil {
		return 0, err
	}
	n := a.c.copyOut(dst, from)
	err := a.c.torn()
	a.unlock(true)
	return n, err
}

// CopyInContext is CopyIn that gives up with ctx.Err(), copying nothing,
// when ctx is done before the lock is acquired, and that reports what Err
// reports: an error wrapping ErrOwnerDead, after copying, while the Array
// is marked inconsistent. It panics if at > Len.
func (a *Array[T]) CopyInContext(ctx context.Context, src []T, at int) (int, error) {
	_ = a.c.s[at:]
	if err := a.acquire(ctx); err != nil {
		return 0, err
	}
	n := a.c.copyIn(src, at)
	err := a.c.torn()
	a.unlock(true)
	return n, err
}

// Slice returns a new slice holding a copy of elements [i, j): Python's
// arr[i:j]. It panics on bounds a []T of length Len would panic on.
func (a *Array[T]) Slice(i, j int) []T {
	_ = a.c.s[i:j]
	out := make([]T, j-i)
	held := a.lock()
	copy(out, a.c.s[i:j])
	a.unlock(held)
	return out
}

// chunk is how many elements All copies per lock hold.
const chunk = 64

// All returns an iterator over (index, element) pairs. It copies chunks of
// elements under the lock and yields outside it, so the loop body may use
// the Array; each chunk is a consistent snapshot, the whole is not.
func (a *Array[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		var buf [chunk]T
		for base := 0; base < len(a.c.s); base += chunk {
			held := a.lock()
			n := copy(buf[:], a.c.s[base:])
			a.unlock(held)
			for k := range n {
				if !yield(base+k, buf[k]) {
					return
				}
			}
		}
	}
}

// Update runs fn on elements [i, j) under the lock: fn's slice is the
// shared memory itself, valid only until fn returns. It panics on bad
// bounds before taking the lock; fn's panics release the lock. While the
// Array is marked inconsistent (a process died holding the lock; see Err),
// Update runs fn all the same and returns an error wrapping ErrOwnerDead:
// fn is where a repair goes, followed by Consistent. It returns an error
// without calling fn only if the lock cannot be acquired.
func (a *Array[T]) Update(i, j int, fn func([]T)) error {
	return a.UpdateContext(context.Background(), i, j, fn)
}

// UpdateContext is Update that gives up with ctx.Err() when ctx is done
// before the lock is acquired.
func (a *Array[T]) UpdateContext(ctx context.Context, i, j int, fn func([]T)) error {
	s := a.c.s[i:j:j]
	if err := a.acquire(ctx); err != nil {
		return err
	}
	defer a.unlock(true)
	fn(s)
	return a.c.torn()
}

// Lock returns the Array's lock: its own, or Options.Lock. Do not call
// other Array methods while holding it unless it is recursive (an RLock):
// they take it too. Use Update for compound operations.
func (a *Array[T]) Lock() value.Locker { return a.lk }

// Value returns a copy of the bytes up to the first NUL (all of them if
// there is none): Python's char-array .value. It panics unless T is a
// one-byte integer type (byte, uint8, int8).
func (a *Array[T]) Value() []byte {
	a.c.byteView("Value")
	held := a.lock()
	defer a.unlock(held)
	return a.c.value()
}

// SetValue copies v into the array and, if it is shorter, a NUL after it:
// Python's char-array .value assignment. It returns ErrTooLong, changing
// nothing, if v is longer than the array. While the Array is marked
// inconsistent it stores v and returns an error wrapping ErrOwnerDead (see
// Err). It panics unless T is a one-byte integer type.
func (a *Array[T]) SetValue(v []byte) error {
	a.c.byteView("SetValue")
	held := a.lock()
	defer a.unlock(held)
	if err := a.c.setValue(v); err != nil {
		return err
	}
	return a.c.torn()
}

// Raw returns a copy of all the bytes: Python's char-array .raw. It panics
// unless T is a one-byte integer type.
func (a *Array[T]) Raw() []byte {
	a.c.byteView("Raw")
	held := a.lock()
	defer a.unlock(held)
	return a.c.raw()
}

// SetRaw copies v over the array's first len(v) bytes, leaving the rest as
// it was: Python's char-array .raw assignment. It returns ErrTooLong,
// changing nothing, if v is longer than the array (CopyIn would truncate).
// While the Array is marked inconsistent it stores v and returns an error
// wrapping ErrOwnerDead (see Err). It panics unless T is a one-byte integer
// type.
func (a *Array[T]) SetRaw(v []byte) error {
	a.c.byteView("SetRaw")
	held := a.lock()
	defer a.unlock(held)
	if err := a.c.setRaw(v); err != nil {
		return err
	}
	return a.c.torn()
}

// SetSlice assigns src to elements [i, j): Python's arr[i:j] = src. It
// returns ErrRange for indices outside the array and ErrSliceLength for a
// src whose length is not j-i, changing nothing; it never panics. While
// the Array is marked inconsistent it assigns src and returns an error
// wrapping ErrOwnerDead (see Err).
func (a *Array[T]) SetSlice(i, j int, src []T) error {
	if err := a.c.checkSlice(i, j, len(src)); err != nil {
		return err
	}
	held := a.lock()
	copy(a.c.s[i:j], src)
	err := a.c.torn()
	a.unlock(held)
	return err
}

// State is a snapshot of an Array, for inspection.
type State struct {
	Len         int
	ElemSize    int
	Fingerprint uint64
	Type        string       // layout of T
	OwnLock     bool         // the lock is the Array's own
	Lock        *rlock.State // the own lock's state, if OwnLock
	// Inconsistent: a method took the lock over from a process that died
	// holding it, and nobody has called Consistent since (see Err).
	Inconsistent bool
}

func (c *core[T]) state() State {
	return State{Len: len(c.s), ElemSize: int(c.info.Size), Fingerprint: c.info.Fingerprint, Type: c.info.Desc,
		Inconsistent: atomic.LoadUint32(c.flags)&flagTorn != 0}
}

// State returns a snapshot of the Array.
func (a *Array[T]) State() State {
	st := a.c.state()
	if a.mine {
		ls := a.own.State()
		st.OwnLock, st.Lock = true, &ls
	}
	return st
}
