package value

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
)

// Binary layout of a Value (little-endian, 64-byte aligned; SizeOf bytes):
//
//	offset 0    uint32  magic "mpvl"
//	offset 4    uint32  layout version
//	offset 8    uint64  size of T in bytes
//	offset 16   uint64  fingerprint of T (package internal/typeinfo)
//	offset 24   uint32  flags: bit 0 = the Value has its own lock at offset 64;
//	                    bit 1 = inconsistent: the lock was taken over from a
//	                    process that died holding it, not yet repaired
//	offset 28   uint32  alignment of T
//	offset 32   uint64  sequence: number of completed writes (T wider than 8 bytes)
//	offset 40   uint64  writer lock word (robust lock word, T wider than 8 bytes)
//	offset 48   16 bytes reserved, zero
//	offset 64   64 bytes: the Value's own RLock (package rlock layout), if flag bit 0
//	offset 128  data
//
// Data, when T is at most 8 bytes: one 8-byte word holding T in its low
// bytes, padding and the rest zero. T of at most 4 bytes is accessed with
// 32-bit atomics on the first 4 bytes, T of 5 to 8 bytes with 64-bit
// atomics on the whole word.
//
// Data, when T is wider: two slots of S bytes each, S = size of T rounded
// up to 64, at offsets 128 and 128+S. The current value is in slot
// (sequence & 1). A writer holds the writer lock, writes the other slot
// with 8-byte stores, then stores sequence+1 (publishing it). A reader
// loads the sequence, copies the slot it names with 8-byte loads, and
// loads the sequence again: if it did not change, no writer touched that
// slot meanwhile (the next writer to do so starts only after the sequence
// moved on) and the copy is consistent; otherwise it retries.
const (
	// Version is the layout version of a Value.
	// Version 2: owner records name process registry slots, not pids.
	Version = 2
	// Align is the alignment a Value needs (a cache line).
	Align = 64

	magic      = 0x6c76706d // "mpvl"
	headerSize = 128
	ownLockOff = 64
	flagOwn    = 1 << 0
	// flagTorn marks a Value whose lock an Update took over from a process
	// that died holding it: what that process guarded with the lock may be
	// half done. Set under the lock by the taker, cleared by Consistent.
	flagTorn = 1 << 1

	offMagic   = 0
	offVersion = 4
	offSize    = 8
	offFP      = 16
	offFlags   = 24
	offAlign   = 28
	offSeq     = 32
	offWriter  = 40
)

// How a cell's data is accessed.
const (
	op32   = iota + 1 // T of 1..4 bytes: one uint32
	op64              // T of 5..8 bytes: one uint64
	opWide            // T wider than 8 bytes: two slots and a sequence
)

// maxOptimistic is how many times a wide Load retries before it takes the
// writer lock to guarantee progress.
var maxOptimistic = 64

// layout computes the size of a Value of the described type.
func layout(info typeinfo.Info) (size, slot uintptr) {
	if info.Size <= 8 {
		return headerSize + 64, 0
	}
	slot = (info.Size + 63) &^ 63
	return headerSize + 2*slot, slot
}

// SizeOf returns the number of bytes a Value[T] or RawValue[T] occupies,
// or an error wrapping typeinfo.ErrUnsupportedType.
func SizeOf[T any]() (int, error) {
	info, err := typeinfo.Of[T]()
	if err != nil {
		return 0, fmt.Errorf("value: %w", err)
	}
	n, _ := layout(info)
	return int(n), nil
}

// cell is the data half of a Value or RawValue: everything but the lock.
type cell[T any] struct {
	mem   []byte
	data  unsafe.Pointer // the word, or slot 0
	slot  uintptr        // slot size (wide)
	size  uintptr        // size of T
	op    uint8
	num   uint8 // numeric class for Add
	mask  uint64
	fmask []byte // wide: field mask, nil when T has no padding
	seq   *uint64
	flags *uint32 // the header's flags word (flagTorn changes at run time)
	wr    robust.Mutex
	info  typeinfo.Info
}

func word32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func word64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

// Numeric classes for Add.
const (
	numNone = iota
	numInt32
	numInt64
	numOther // other numeric kinds: compare-and-swap loop
)

func numClass(t reflect.Type) uint8 {
	switch t.Kind() {
	case reflect.Int32, reflect.Uint32:
		return numInt32
	case reflect.Int64, reflect.Uint64, reflect.Int, reflect.Uint:
		return numInt64
	case reflect.Int8, reflect.Int16, reflect.Uint8, reflect.Uint16,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return numOther
	}
	return numNone
}

// typeOf checks T for a Value.
func typeOf[T any]() (typeinfo.Info, error) {
	info, err := typeinfo.Of[T]()
	if err != nil {
		return info, fmt.Errorf("value: %w", err)
	}
	return info, nil
}

// setup fills c from mem (already validated) for T.
func (c *cell[T]) setup(mem []byte, info typeinfo.Info, o *Options) {
	c.setupAs(mem, info, reflect.TypeFor[T](), o)
}

// setupAs is setup for a value of type t, which is T except in loadBytes.
func (c *cell[T]) setupAs(mem []byte, info typeinfo.Info, t reflect.Type, o *Options) {
	size, slot := layout(info)
	*c = cell[T]{
		mem:   mem[:size:size],
		data:  unsafe.Pointer(&mem[headerSize]),
		slot:  slot,
		size:  info.Size,
		num:   numClass(t),
		seq:   word64(mem, offSeq),
		flags: word32(mem, offFlags),
		wr:    robust.New(word64(mem, offWriter), o.registry(), o.check()),
		info:  info,
	}
	fm := typeinfo.FieldMask(t)
	switch {
	case info.Size <= 4:
		c.op = op32
	case info.Size <= 8:
		c.op = op64
	default:
		c.op = opWide
	}
	if c.op != opWide {
		for i, b := range fm {
			c.mask |= uint64(b) << (8 * i)
		}
		return
	}
	for _, b := range fm {
		if b != 0xff {
			c.fmask = fm
			break
		}
	}
}

func check(mem []byte) error {
	if len(mem) < headerSize {
		return fmt.Errorf("value: memory is %d bytes, need at least %d: %w", len(mem), headerSize, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("value: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

// initCell writes a new Value header and initial value into mem. The
// magic is stored last, publishing the Value.
func (c *cell[T]) init(mem []byte, info typeinfo.Info, initial T, flags uint32, o *Options) error {
	if err := checkMem(mem); err != nil {
		return err
	}
	need, _ := layout(info)
	if uintptr(len(mem)) < need {
		return fmt.Errorf("value: memory is %d bytes, %s needs %d: %w", len(mem), info.Desc, need, shm.ErrCorrupt)
	}
	clear(mem[:need])
	atomic.StoreUint32(word32(mem, offVersion), Version)
	atomic.StoreUint64(word64(mem, offSize), uint64(info.Size))
	atomic.StoreUint64(word64(mem, offFP), info.Fingerprint)
	atomic.StoreUint32(word32(mem, offFlags), flags)
	atomic.StoreUint32(word32(mem, offAlign), uint32(info.Align))
	c.setup(mem, info, o)
	c.storeInit(initial)
	return nil
}

func checkMem(mem []byte) error { return check(mem) }

// publish stores the magic: the last write of Init.
func publish(mem []byte) { atomic.StoreUint32(word32(mem, offMagic), magic) }

// attach validates a Value header for T in mem and fills c. It returns the
// header flags.
func (c *cell[T]) attach(mem []byte, info typeinfo.Info, o *Options) (uint32, error) {
	return c.attachAs(mem, info, reflect.TypeFor[T](), o)
}

// attachAs is attach for a value of type t, which is T except in
// loadBytes.
func (c *cell[T]) attachAs(mem []byte, info typeinfo.Info, t reflect.Type, o *Options) (uint32, error) {
	if err := checkMem(mem); err != nil {
		return 0, err
	}
	if atomic.LoadUint32(word32(mem, offMagic)) != magic {
		return 0, fmt.Errorf("value: no value in memory (bad magic): %w", shm.ErrCorrupt)
	}
	if v := atomic.LoadUint32(word32(mem, offVersion)); v != Version {
		return 0, fmt.Errorf("value: layout version %d, want %d: %w", v, Version, shm.ErrCorrupt)
	}
	size := atomic.LoadUint64(word64(mem, offSize))
	fp := atomic.LoadUint64(word64(mem, offFP))
	if size != uint64(info.Size) || fp != info.Fingerprint {
		return 0, fmt.Errorf("value: stored element is %d bytes with fingerprint %#x, %s is %d bytes with fingerprint %#x: %w",
			size, fp, info.Desc, info.Size, info.Fingerprint, shm.ErrTypeMismatch)
	}
	need, _ := layout(info)
	if uintptr(len(mem)) < need {
		return 0, fmt.Errorf("value: memory is %d bytes, %s needs %d: %w", len(mem), info.Desc, need, shm.ErrCorrupt)
	}
	flags := atomic.LoadUint32(word32(mem, offFlags))
	if flags&^(flagOwn|flagTorn) != 0 {
		return 0, fmt.Errorf("value: unknown flags %#x: %w", flags, shm.ErrCorrupt)
	}
	if !robust.Valid(atomic.LoadUint64(word64(mem, offWriter))) {
		return 0, fmt.Errorf("value: invalid writer lock word: %w", shm.ErrCorrupt)
	}
	c.setupAs(mem, info, t, o)
	return flags, nil
}

// ---- small T: one word ----

func (c *cell[T]) w32() *uint32 { return (*uint32)(c.data) }
func (c *cell[T]) w64() *uint64 { return (*uint64)(c.data) }

func (c *cell[T]) to32(x T) uint32 {
	var w uint32
	*(*T)(unsafe.Pointer(&w)) = x
	return w & uint32(c.mask)
}

func (c *cell[T]) to64(x T) uint64 {
	var w uint64
	*(*T)(unsafe.Pointer(&w)) = x
	return w & c.mask
}

func from32[T any](w uint32) T { return *(*T)(unsafe.Pointer(&w)) }
func from64[T any](w uint64) T { return *(*T)(unsafe.Pointer(&w)) }

// ---- wide T: two slots ----

// copyOut copies the slot at src into dst with 8-byte atomic loads (the
// slot is 8-byte aligned and padded to 64 bytes).
func copyOut(dst []byte, src unsafe.Pointer) {
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], atomic.LoadUint64((*uint64)(unsafe.Add(src, i))))
	}
	if n < len(dst) {
		w := atomic.LoadUint64((*uint64)(unsafe.Add(src, n)))
		for i := n; i < len(dst); i++ {
			dst[i] = byte(w)
			w >>= 8
		}
	}
}

// copyIn copies src into the slot at dst, the tail zero-padded. The
// writer lock is held, so only readers can race with it, and they discard
// what they read unless the sequence stayed put, which it does only if no
// byte they read was written here (see the layout comment). A plain copy
// is therefore safe on the hardware: the stores cannot become visible
// before the lock acquire (a locked instruction) nor after the release
// store of the sequence. The race detector does not know this, so under
// -race the copy is made of atomic stores. Readers always use atomic
// loads: a plain load could be reordered after their second load of the
// sequence on arm64.
func copyIn(dst unsafe.Pointer, src []byte) {
	if !raceEnabled {
		d := unsafe.Slice((*byte)(dst), (len(src)+7)&^7)
		copy(d, src)
		clear(d[len(src):])
		return
	}
	n := len(src) &^ 7
	for i := 0; i < n; i += 8 {
		atomic.StoreUint64((*uint64)(unsafe.Add(dst, i)), binary.LittleEndian.Uint64(src[i:]))
	}
	if n < len(src) {
		var w uint64
		for i := len(src) - 1; i >= n; i-- {
			w = w<<8 | uint64(src[i])
		}
		atomic.StoreUint64((*uint64)(unsafe.Add(dst, n)), w)
	}
}

func bytesOf[T any](x *T, n uintptr) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(x)), n) }

func (c *cell[T]) slotAt(seq uint64) unsafe.Pointer { return unsafe.Add(c.data, uintptr(seq&1)*c.slot) }

// lockWriter takes the writer lock, waiting as long as it takes.
func (c *cell[T]) lockWriter() { c.lockWriterBound(forever) }

// bound says how long a wide operation waits for the writer lock: until
// ctx is done (nil: never) and, if timed, for at most d (d <= 0: not at
// all).
type bound struct {
	ctx   context.Context
	d     time.Duration
	timed bool
}

// forever is the bound of the operations without a context or timeout.
var forever bound

// errTimedOut is what lockWriterBound returns when a timed bound passed.
var errTimedOut = errors.New("value: writer lock not acquired in time")

// lockWriterBound takes the writer lock within b: it returns nil (held),
// errTimedOut or ctx.Err(). A writer that died holding the lock wrote at
// most the slot that was not yet published, so the data is intact and the
// lock is simply marked consistent. The lock is private to the cell and
// always marked consistent, so a not-recoverable or malformed word can only
// be a corrupting peer's: it is seized rather than refused forever, which
// the double buffer makes safe. The clock is read only if the lock is not
// free at once. (A timed wait that meets such a word more than once may
// last up to twice its timeout.)
func (c *cell[T]) lockWriterBound(b bound) error {
	var deadline time.Time // for a timed bound, once the first wait failed
	for {
		var err error
		switch {
		case b.timed && b.d <= 0:
			var ok bool
			if ok, err = c.wr.TryLock(); !ok && err == nil {
				return errTimedOut // held by a live process
			}
		case b.timed && deadline.IsZero():
			err = c.wr.LockTimeout(b.d)
			deadline = futex.After(b.d)
		default:
			err = c.wr.Lock(b.ctx, deadline)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, robust.ErrOwnerDead):
			c.wr.Consistent() // fails only if a peer rewrote the word meanwhile
			return nil
		case err == futex.ErrTimeout:
			return errTimedOut
		case b.ctx != nil && err == b.ctx.Err():
			return err
		}
		if c.wr.Seize() {
			return nil
		}
		if b.timed && b.d <= 0 {
			return errTimedOut
		}
	}
}

// unlockWriter releases the writer lock. The write is already published, so
// a word a peer cleared or rewrote under us is no reason to fail.
func (c *cell[T]) unlockWriter() {
	c.wr.Unlock()
}

func (c *cell[T]) loadWide() (x T) {
	c.loadWideInto(bytesOf(&x, c.size))
	return x
}

// loadWideInto copies the current value of a wide T into dst (c.size
// bytes), never torn.
func (c *cell[T]) loadWideInto(dst []byte) {
	for i := 0; i < maxOptimistic; i++ {
		s := atomic.LoadUint64(c.seq)
		copyOut(dst, c.slotAt(s))
		if atomic.LoadUint64(c.seq) == s {
			return
		}
	}
	// Writers keep overtaking this reader: queue behind them once.
	c.lockWriter()
	copyOut(dst, c.slotAt(atomic.LoadUint64(c.seq)))
	c.unlockWriter()
}

// loadInto copies the value, as load reads it, into dst (c.size bytes),
// whatever T is: the type-erased load of loadBytes.
func (c *cell[T]) loadInto(dst []byte) {
	var w uint64
	switch c.op {
	case op64:
		w = atomic.LoadUint64(c.w64())
	case op32:
		w = uint64(atomic.LoadUint32(c.w32()))
	default:
		c.loadWideInto(dst)
		return
	}
	for i := range dst {
		dst[i] = byte(w >> (8 * i))
	}
}

// publishWide writes x to the free slot and publishes it. The writer lock
// must be held.
func (c *cell[T]) publishWide(s uint64, x *T) {
	copyIn(c.slotAt(s+1), bytesOf(x, c.size))
	atomic.StoreUint64(c.seq, s+1) // publishes the slot just written
}

func (c *cell[T]) storeInit(x T) {
	switch c.op {
	case op32:
		atomic.StoreUint32(c.w32(), c.to32(x))
	case op64:
		atomic.StoreUint64(c.w64(), c.to64(x))
	default:
		copyIn(c.slotAt(0), bytesOf(&x, c.size))
		atomic.StoreUint64(c.seq, 0)
	}
}

// ---- operations ----

func (c *cell[T]) load() T {
	switch c.op {
	case op64:
		return from64[T](atomic.LoadUint64(c.w64()))
	case op32:
		return from32[T](atomic.LoadUint32(c.w32()))
	}
	return c.loadWide()
}

func (c *cell[T]) store(x T) {
	switch c.op {
	case op64:
		atomic.StoreUint64(c.w64(), c.to64(x))
	case op32:
		atomic.StoreUint32(c.w32(), c.to32(x))
	default:
		c.storeWide(x, forever)
	}
}

// storeWide is store for a wide T, waiting for the writer lock within b.
func (c *cell[T]) storeWide(x T, b bound) error {
	if err := c.lockWriterBound(b); err != nil {
		return err
	}
	c.publishWide(atomic.LoadUint64(c.seq), &x)
	c.unlockWriter()
	return nil
}

// storeBound is store within b: it fails only for a wide T.
func (c *cell[T]) storeBound(x T, b bound) error {
	if c.op != opWide {
		c.store(x)
		return nil
	}
	return c.storeWide(x, b)
}

func (c *cell[T]) swap(x T) T {
	switch c.op {
	case op64:
		return from64[T](atomic.SwapUint64(c.w64(), c.to64(x)))
	case op32:
		return from32[T](atomic.SwapUint32(c.w32(), c.to32(x)))
	}
	old, _ := c.swapWide(x, forever)
	return old
}

// swapWide is swap for a wide T, waiting for the writer lock within b.
func (c *cell[T]) swapWide(x T, b bound) (old T, err error) {
	if err := c.lockWriterBound(b); err != nil {
		return old, err
	}
	s := atomic.LoadUint64(c.seq)
	copyOut(bytesOf(&old, c.size), c.slotAt(s))
	c.publishWide(s, &x)
	c.unlockWriter()
	return old, nil
}

// swapBound is swap within b: it fails only for a wide T.
func (c *cell[T]) swapBound(x T, b bound) (T, error) {
	if c.op != opWide {
		return c.swap(x), nil
	}
	return c.swapWide(x, b)
}

func (c *cell[T]) equalMasked(a, b *T) bool {
	x, y := bytesOf(a, c.size), bytesOf(b, c.size)
	if c.fmask == nil {
		return string(x) == string(y)
	}
	for i, m := range c.fmask {
		if x[i]&m != y[i]&m {
			return false
		}
	}
	return true
}

func (c *cell[T]) compareAndSwap(old, new T) bool {
	switch c.op {
	case op64:
		return atomic.CompareAndSwapUint64(c.w64(), c.to64(old), c.to64(new))
	case op32:
		return atomic.CompareAndSwapUint32(c.w32(), c.to32(old), c.to32(new))
	}
	swapped, _ := c.compareAndSwapWide(old, new, forever)
	return swapped
}

// compareAndSwapWide is compareAndSwap for a wide T, waiting for the
// writer lock within b.
func (c *cell[T]) compareAndSwapWide(old, new T, b bound) (bool, error) {
	if err := c.lockWriterBound(b); err != nil {
		return false, err
	}
	defer c.unlockWriter()
	var cur T
	s := atomic.LoadUint64(c.seq)
	copyOut(bytesOf(&cur, c.size), c.slotAt(s))
	if !c.equalMasked(&cur, &old) {
		return false, nil
	}
	c.publishWide(s, &new)
	return true, nil
}

// compareAndSwapBound is compareAndSwap within b: it fails only for a wide
// T.
func (c *cell[T]) compareAndSwapBound(old, new T, b bound) (bool, error) {
	if c.op != opWide {
		return c.compareAndSwap(old, new), nil
	}
	return c.compareAndSwapWide(old, new, b)
}

// update applies fn atomically with respect to every other operation and
// returns the new value. For T of at most 8 bytes, fn runs in a
// compare-and-swap loop and may run more than once.
func (c *cell[T]) update(fn func(*T)) T {
	x, _ := c.updateBound(fn, forever)
	return x
}

// updateBound is update within b: it fails (without running fn) only for
// a wide T whose writer lock it could not take within b.
func (c *cell[T]) updateBound(fn func(*T), b bound) (T, error) {
	switch c.op {
	case op64:
		for {
			ow := atomic.LoadUint64(c.w64())
			x := from64[T](ow)
			fn(&x)
			if atomic.CompareAndSwapUint64(c.w64(), ow, c.to64(x)) {
				return x, nil
			}
		}
	case op32:
		for {
			ow := atomic.LoadUint32(c.w32())
			x := from32[T](ow)
			fn(&x)
			if atomic.CompareAndSwapUint32(c.w32(), ow, c.to32(x)) {
				return x, nil
			}
		}
	}
	var x T
	if err := c.lockWriterBound(b); err != nil {
		return x, err
	}
	defer c.unlockWriter()
	s := atomic.LoadUint64(c.seq)
	copyOut(bytesOf(&x, c.size), c.slotAt(s))
	fn(&x)
	c.publishWide(s, &x)
	return x, nil
}

func (c *cell[T]) add(delta T) T {
	switch c.num {
	case numInt64:
		if c.op == op64 {
			r := atomic.AddUint64(c.w64(), *(*uint64)(unsafe.Pointer(&delta)))
			return from64[T](r)
		}
	case numInt32:
		if c.op == op32 {
			r := atomic.AddUint32(c.w32(), *(*uint32)(unsafe.Pointer(&delta)))
			return from32[T](r)
		}
	case numNone:
		panic("value: Add on non-numeric type " + reflect.TypeFor[T]().String())
	}
	k := reflect.TypeFor[T]().Kind()
	return c.update(func(p *T) { addTo(k, unsafe.Pointer(p), unsafe.Pointer(&delta)) })
}

// addTo does *p += *d for numeric kind k.
func addTo(k reflect.Kind, p, d unsafe.Pointer) {
	switch k {
	case reflect.Int8, reflect.Uint8:
		*(*uint8)(p) += *(*uint8)(d)
	case reflect.Int16, reflect.Uint16:
		*(*uint16)(p) += *(*uint16)(d)
	case reflect.Int32, reflect.Uint32:
		*(*uint32)(p) += *(*uint32)(d)
	case reflect.Int64, reflect.Uint64, reflect.Int, reflect.Uint:
		*(*uint64)(p) += *(*uint64)(d)
	case reflect.Float32:
		*(*float32)(p) += *(*float32)(d)
	case reflect.Float64:
		*(*float64)(p) += *(*float64)(d)
	case reflect.Complex64:
		*(*complex64)(p) += *(*complex64)(d)
	case reflect.Complex128:
		*(*complex128)(p) += *(*complex128)(d)
	}
}
