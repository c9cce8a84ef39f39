package dict

import (
	"errors"
	"fmt"
	"iter"
	"reflect"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
)

// Errors.
var (
	// ErrFull is returned by an insert when the stripe of the key holds
	// as many entries as it may (see the package documentation on
	// sizing). Deleting entries makes room again.
	ErrFull = errors.New("dict: full")
	// ErrKeyTooLong is returned by the bytes form for a key longer than
	// the longest key the Bytes was created for.
	ErrKeyTooLong = errors.New("dict: key too long")
	// ErrValueTooLong is returned by the bytes form for a value longer
	// than the longest value the Bytes was created for.
	ErrValueTooLong = errors.New("dict: value too long")
)

// Options configure a Dict or Bytes. The zero value (or nil) means the
// defaults.
type Options struct {
	// Stripes is the number of stripes, rounded up to a power of two, at
	// most MaxStripes: writers of keys in different stripes run in
	// parallel. Default: one per 64 entries of capacity, from 1 to 64.
	// Used by Create, Init and SizeOf; the others read it from memory.
	Stripes int
	// CheckInterval is how often a writer waiting for a stripe lock
	// checks whether its holder is alive. Default 100 ms.
	CheckInterval time.Duration
	// Registry names the processes that may hold a stripe lock, so that a
	// dead writer can be told from a live one. Create and Open use the
	// segment's when nil. For Init and Attach, nil means no registry: a
	// dead writer's stripe is then never taken over (see shm.Registry).
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

func (o *Options) stripes() int {
	if o == nil {
		return 0
	}
	return o.Stripes
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

// inlineWords is the largest key, in words, that operations handle
// without allocating.
const inlineWords = 16

// Dict is a hash map from K to V shared between processes: Python's
// Manager().dict() without the server process. Obtain one with Create or
// Open (in a segment) or Init or Attach (in memory you own); the zero
// Dict is not usable.
//
// K and V are any fixed-size types without pointers (see package
// internal/typeinfo). Keys are compared by their bytes with padding
// masked: floats compare by bits (NaN equals the same NaN, -0 differs
// from +0).
//
// Get takes no lock and never waits for a writer. Set, Delete,
// LoadOrStore, CompareAndSwap and Update take the lock of the key's
// stripe; writers of keys in different stripes run in parallel. Every
// write synchronizes before the Get that observes it, in any process
// mapping the memory. K and V of up to 128 bytes cost no allocation.
//
// A Dict handle must not be copied after first use; it is safe for
// concurrent use by many goroutines.
type Dict[K, V any] struct {
	_      noCopy
	t      table
	kmask  []uint64 // K's field mask as words; nil when K has no padding
	vmask  []byte   // V's field mask; nil when V has no padding
	ksize  uintptr
	vsize  uintptr
	word   bool   // K and V of at most 8 bytes each: the one-word paths
	kmask1 uint64 // K's field mask as one word, for the one-word paths
	kinfo  typeinfo.Info
	vinfo  typeinfo.Info
}

func types[K, V any]() (ki, vi typeinfo.Info, err error) {
	if ki, err = typeinfo.Of[K](); err != nil {
		return ki, vi, fmt.Errorf("dict: key: %w", err)
	}
	if vi, err = typeinfo.Of[V](); err != nil {
		return ki, vi, fmt.Errorf("dict: value: %w", err)
	}
	return ki, vi, nil
}

// fingerprint combines the fingerprints of K and V for the segment
// directory.
func fingerprint(ki, vi typeinfo.Info) uint64 {
	h := ki.Fingerprint*m1 ^ vi.Fingerprint
	h ^= h >> 31
	h *= m2
	h ^= h >> 29
	if h == 0 || h == bytesFP {
		h++
	}
	return h
}

// SizeOf returns the number of bytes a Dict[K, V] of the given capacity
// occupies (with opts.Stripes), or an error wrapping
// typeinfo.ErrUnsupportedType or shm.ErrInvalidSize.
func SizeOf[K, V any](capacity int, opts *Options) (int, error) {
	ki, vi, err := types[K, V]()
	if err != nil {
		return 0, err
	}
	g, err := newGeometry(capacity, uint64(ki.Size), uint64(vi.Size), false, false, opts.stripes())
	if err != nil {
		return 0, err
	}
	return int(g.size), nil
}

func (d *Dict[K, V]) setup(mem []byte, g geometry, ki, vi typeinfo.Info, reg *proc.Registry, check time.Duration) {
	d.t.setup(mem, g, reg, check)
	d.ksize, d.vsize, d.kinfo, d.vinfo = ki.Size, vi.Size, ki, vi
	km := typeinfo.FieldMask(reflect.TypeFor[K]())
	for _, b := range km {
		if b != 0xff {
			d.kmask = make([]uint64, d.t.kw)
			copyBytesToWords(d.kmask, km)
			break
		}
	}
	d.word = d.t.kw == 1 && d.t.vw == 1
	d.kmask1 = ^uint64(0)
	if d.kmask != nil {
		d.kmask1 = d.kmask[0]
	}
	if d.ksize < 8 {
		d.kmask1 &= 1<<(8*d.ksize) - 1
	}
	vm := typeinfo.FieldMask(reflect.TypeFor[V]())
	for _, b := range vm {
		if b != 0xff {
			d.vmask = vm
			break
		}
	}
}

func copyBytesToWords(w []uint64, b []byte) {
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 8*len(w)), b)
}

// Init initializes an empty Dict[K, V] with room for capacity entries in
// mem (at least SizeOf bytes, 8-byte aligned; Align recommended) and
// returns a handle on it. Nothing else may use mem while Init runs.
func Init[K, V any](mem []byte, capacity int, opts *Options) (*Dict[K, V], error) {
	ki, vi, err := types[K, V]()
	if err != nil {
		return nil, err
	}
	g, err := newGeometry(capacity, uint64(ki.Size), uint64(vi.Size), false, false, opts.stripes())
	if err != nil {
		return nil, err
	}
	if err := initMem(mem, g, ki.Fingerprint, vi.Fingerprint); err != nil {
		return nil, err
	}
	d := &Dict[K, V]{}
	d.setup(mem, g, ki, vi, opts.registry(), opts.check())
	publish(mem)
	return d, nil
}

// Attach returns a handle on a Dict[K, V] that Init set up in mem,
// possibly in another process. It fails with shm.ErrTypeMismatch if it
// was created with another K or V (or is a Bytes), and shm.ErrCorrupt if
// mem does not hold a Dict.
func Attach[K, V any](mem []byte, opts *Options) (*Dict[K, V], error) {
	ki, vi, err := types[K, V]()
	if err != nil {
		return nil, err
	}
	g, err := readGeometry(mem)
	if err != nil {
		return nil, err
	}
	kfp, vfp := loadFP(mem)
	if g.varKey || g.varVal || g.keyBytes != uint64(ki.Size) || g.valBytes != uint64(vi.Size) ||
		kfp != ki.Fingerprint || vfp != vi.Fingerprint {
		return nil, fmt.Errorf("dict: stored key/value are %d/%d bytes with fingerprints %#x/%#x (bytes form: %v), %s/%s are %d/%d bytes with %#x/%#x: %w",
			g.keyBytes, g.valBytes, kfp, vfp, g.varKey, ki.Desc, vi.Desc, ki.Size, vi.Size, ki.Fingerprint, vi.Fingerprint, shm.ErrTypeMismatch)
	}
	d := &Dict[K, V]{}
	d.setup(mem, g, ki, vi, opts.registry(), opts.check())
	if err := d.t.checkLocks(); err != nil {
		return nil, err
	}
	return d, nil
}

func spec[K, V any](name string) (shm.Spec, error) {
	ki, vi, err := types[K, V]()
	if err != nil {
		return shm.Spec{}, err
	}
	return shm.Spec{Name: name, Kind: shm.KindDict, KindVersion: Version, Fingerprint: fingerprint(ki, vi)}, nil
}

// Create places a new, empty Dict[K, V] with room for capacity entries,
// named name, in seg. It fails with shm.ErrExist if the name is taken,
// and with an error wrapping typeinfo.ErrUnsupportedType if K or V cannot
// be shared.
func Create[K, V any](seg *shm.Segment, name string, capacity int, opts *Options) (*Dict[K, V], error) {
	sp, err := spec[K, V](name)
	if err != nil {
		return nil, err
	}
	n, err := SizeOf[K, V](capacity, opts)
	if err != nil {
		return nil, err
	}
	sp.Size = int64(n)
	var d *Dict[K, V]
	mem, err := seg.Alloc(sp, func(mem []byte) (err error) {
		d, err = Init[K, V](mem, capacity, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dict: creating %q: %w", name, err)
	}
	shm.Keep(seg, d, mem)
	return d, nil
}

// Open attaches to the Dict[K, V] named name in seg. It fails with
// shm.ErrTypeMismatch if the Dict has another key or value type.
func Open[K, V any](seg *shm.Segment, name string, opts *Options) (*Dict[K, V], error) {
	sp, err := spec[K, V](name)
	if err != nil {
		return nil, err
	}
	mem, err := seg.Lookup(sp)
	if err != nil {
		return nil, fmt.Errorf("dict: opening %q: %w", name, err)
	}
	d, err := Attach[K, V](mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, d, mem)
	} else {
		seg.Release(mem)
	}
	return d, err
}

// keyWords returns k as masked words, in buf when it fits.
func (d *Dict[K, V]) keyWords(k *K, buf *[inlineWords]uint64) []uint64 {
	var w []uint64
	if d.t.kw <= inlineWords {
		w = buf[:d.t.kw]
	} else {
		w = make([]uint64, d.t.kw)
	}
	w[len(w)-1] = 0
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), d.ksize), unsafe.Slice((*byte)(unsafe.Pointer(k)), d.ksize))
	if d.kmask != nil {
		for i := range w {
			w[i] &= d.kmask[i]
		}
	}
	return w
}

func bytesOf[T any](p *T, n uintptr) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(p)), n) }

// keyWord returns k, of at most 8 bytes, as one masked word.
func (d *Dict[K, V]) keyWord(k *K) uint64 {
	if d.ksize == 8 {
		return *(*uint64)(unsafe.Pointer(k)) & d.kmask1
	}
	return shortWord(unsafe.Pointer(k), d.ksize) & d.kmask1
}

// shortWord reads the n < 8 bytes at p as the low bytes of a word.
func shortWord(p unsafe.Pointer, n uintptr) uint64 {
	var w uint64
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&w)), n), unsafe.Slice((*byte)(p), n))
	return w
}

// Get returns the value of k and whether k is present. It takes no lock
// and never waits for a writer.
func (d *Dict[K, V]) Get(k K) (V, bool) {
	if !d.word {
		return d.getWords(&k)
	}
	w, ok := d.t.get1(d.keyWord(&k))
	return *(*V)(unsafe.Pointer(&w)), ok
}

// getWords is Get for K or V wider than a word.
func (d *Dict[K, V]) getWords(k *K) (V, bool) {
	var buf [inlineWords]uint64
	key := d.keyWords(k, &buf)
	var v V
	_, ok := d.t.get(key, d.t.hash(key), bytesOf(&v, d.vsize))
	return v, ok
}

// Set sets the value of k to v. It returns ErrFull when k is absent and
// its stripe is full.
func (d *Dict[K, V]) Set(k K, v V) error {
	var buf [inlineWords]uint64
	l, err := d.lockKey(&k, &buf)
	if err != nil {
		return err
	}
	if l.slot >= 0 && d.word {
		var w uint64
		*(*V)(unsafe.Pointer(&w)) = v
		d.t.replace1(l.s, l.slot, l.c, w)
		return d.t.unlock(l.s)
	}
	return d.unlock(&l, d.store(&l, &v))
}

// Delete removes k and reports whether it was present.
func (d *Dict[K, V]) Delete(k K) (bool, error) {
	var buf [inlineWords]uint64
	l, err := d.lockKey(&k, &buf)
	if err != nil {
		return false, err
	}
	if l.slot >= 0 {
		d.t.remove(l.s, l.slot, l.c)
	}
	return l.slot >= 0, d.t.unlock(l.s)
}

// locked is an entry found with its stripe lock held.
type locked struct {
	key        []uint64
	h, s       uint64
	slot, free int64
	c          uint64
}

// lockKey takes the lock of k's stripe and locates k. The caller
// unlocks with d.t.unlock(l.s).
func (d *Dict[K, V]) lockKey(k *K, buf *[inlineWords]uint64) (l locked, err error) {
	if d.word {
		buf[0] = d.keyWord(k)
		l.key, l.h = buf[:1], d.t.hash1(buf[0])
	} else {
		l.key = d.keyWords(k, buf)
		l.h = d.t.hash(l.key)
	}
	l.s = d.t.stripeOf(l.h)
	if err := d.t.lock(l.s); err != nil {
		return l, err
	}
	l.slot, l.free, l.c = d.t.locate(l.s, l.key, l.h)
	return l, nil
}

// old copies the current value of the located entry into v.
func (d *Dict[K, V]) old(l *locked, v *V) {
	d.t.readVal(d.t.valOf(d.t.entry(d.t.active(l.s), uint64(l.slot)), l.c), bytesOf(v, d.vsize))
}

// store sets the located entry to v, inserting it if absent.
func (d *Dict[K, V]) store(l *locked, v *V) error {
	if l.slot >= 0 {
		d.t.replace(l.s, l.slot, l.c, bytesOf(v, d.vsize))
		return nil
	}
	return d.t.insert(l.s, l.key, l.h, l.free, bytesOf(v, d.vsize))
}

func (d *Dict[K, V]) unlock(l *locked, err error) error {
	if uerr := d.t.unlock(l.s); err == nil {
		err = uerr
	}
	return err
}

// Update is an atomic read-modify-write of k: it calls fn with the
// current value of k and whether k is present, with the stripe lock held,
// and stores what fn returns: the new value, and whether k shall be
// present (false deletes k, or leaves it absent). It returns the new
// value and whether k is now present. fn runs exactly once; keep it
// short, as writers of the stripe wait for it, and do not call the Dict
// from it. If fn panics, the stripe is unlocked and the Dict unchanged.
func (d *Dict[K, V]) Update(k K, fn func(old V, ok bool) (V, bool)) (nv V, keep bool, err error) {
	var buf [inlineWords]uint64
	l, err := d.lockKey(&k, &buf)
	if err != nil {
		return nv, false, err
	}
	defer func() { err = d.unlock(&l, err) }()
	var old V
	if l.slot >= 0 {
		d.old(&l, &old)
	}
	nv, keep = fn(old, l.slot >= 0)
	switch {
	case keep:
		err = d.store(&l, &nv)
	case l.slot >= 0:
		d.t.remove(l.s, l.slot, l.c)
	}
	if err != nil || !keep {
		var zero V
		return zero, false, err
	}
	return nv, true, nil
}

// LoadOrStore returns the value of k if present (loaded true); otherwise
// it stores v and returns it.
func (d *Dict[K, V]) LoadOrStore(k K, v V) (actual V, loaded bool, err error) {
	var buf [inlineWords]uint64
	l, err := d.lockKey(&k, &buf)
	if err != nil {
		return actual, false, err
	}
	if l.slot >= 0 {
		d.old(&l, &actual)
		return actual, true, d.unlock(&l, nil)
	}
	if err := d.unlock(&l, d.store(&l, &v)); err != nil {
		return actual, false, err
	}
	return v, false, nil
}

// CompareAndSwap sets k to new if k is present with a value equal to old
// (bytewise, padding excluded) and reports whether it did.
func (d *Dict[K, V]) CompareAndSwap(k K, old, new V) (bool, error) {
	var buf [inlineWords]uint64
	l, err := d.lockKey(&k, &buf)
	if err != nil {
		return false, err
	}
	if l.slot < 0 {
		return false, d.unlock(&l, nil)
	}
	var cur V
	d.old(&l, &cur)
	if !d.equal(&cur, &old) {
		return false, d.unlock(&l, nil)
	}
	d.t.replace(l.s, l.slot, l.c, bytesOf(&new, d.vsize))
	return true, d.unlock(&l, nil)
}

func (d *Dict[K, V]) equal(a, b *V) bool {
	x, y := bytesOf(a, d.vsize), bytesOf(b, d.vsize)
	if d.vmask == nil {
		return string(x) == string(y)
	}
	for i, m := range d.vmask {
		if (x[i]^y[i])&m != 0 {
			return false
		}
	}
	return true
}

// Len returns the number of entries: the sum of the stripes' counts, each
// read atomically, not all at one instant.
func (d *Dict[K, V]) Len() int { return d.t.length() }

// Capacity returns the capacity the Dict was created with.
func (d *Dict[K, V]) Capacity() int { return int(d.t.capacity) }

// Clear removes every entry, one stripe after the other: each stripe is
// emptied atomically, and an entry set in a stripe after Clear emptied it
// stays.
func (d *Dict[K, V]) Clear() error { return d.t.clear() }

// All returns an iterator over the entries. It visits the stripes in
// turn; each stripe is copied under its lock (writers of that stripe wait
// for the copy, readers do not), and its entries are yielded from the
// copy, so the loop body may call the Dict. Each entry is seen at most
// once, an entry present for the whole iteration is seen exactly once,
// and the value seen is one the entry held during the iteration. A stripe
// whose lock cannot be taken ends the iteration.
func (d *Dict[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		var buf []uint64
		stride := d.t.kw + d.t.vw
		for s := range d.t.nstripes {
			var err error
			buf, err = d.t.snapshot(s, buf[:0])
			if err != nil {
				return
			}
			for i := 0; i+int(stride) <= len(buf); i += int(stride) {
				var k K
				var v V
				copy(bytesOf(&k, d.ksize), unsafe.Slice((*byte)(unsafe.Pointer(&buf[i])), d.ksize))
				copy(bytesOf(&v, d.vsize), unsafe.Slice((*byte)(unsafe.Pointer(&buf[i+int(d.t.kw)])), d.vsize))
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// State returns a snapshot of the Dict, for inspection.
func (d *Dict[K, V]) State() State { return d.t.state() }
