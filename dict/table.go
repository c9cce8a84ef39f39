package dict

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/release"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
)

// table is the engine both forms share. It sees keys as words (K with
// its padding zeroed, or a length word then the bytes) and values as
// bytes.
//
// Writers of a stripe hold its lock; readers take none. A reader loads
// the stripe's epoch, probes the active region from the key's home slot
// (linear probing inside the region), and for a live slot with its key
// copies the value copy that ctl names, then loads ctl and the epoch
// again: if neither moved, nobody changed the entry meanwhile (a writer
// writes the other copy and then moves ctl, and a rebuild moves the
// epoch), so the copy is consistent. A reader never waits for a writer
// in progress: it retries only when a write completed under it.
type table struct {
	mem      []byte
	base     unsafe.Pointer
	stripes  unsafe.Pointer // first stripe header
	regions  unsafe.Pointer // first region
	shift    uint           // 64 - log2 stripes: h>>shift is the stripe
	nstripes uint64
	slots    uint64
	mask     uint64
	limit    uint64 // live entries per stripe
	maxUsed  uint64 // live + tombstones per stripe before a rebuild
	capacity uint64
	keyBytes uint64
	valBytes uint64
	varKey   bool
	varVal   bool
	kw, vw   uint64
	esz      uintptr
	region   uintptr // bytes per region
	seed     uint64
	locks    []robust.Mutex
}

// rebuildAt, when set (by tests), makes a stripe rebuild when an insert
// into an empty slot would make its live entries and tombstones exceed
// it, instead of 3/4 of its region: rebuilds then happen often enough to
// be tested.
var rebuildAt uint64

// setup fills t from validated memory.
func (t *table) setup(mem []byte, g geometry, reg *proc.Registry, check time.Duration) {
	s := uint64(1) << g.sbits
	*t = table{
		mem:      mem[:g.size:g.size],
		base:     unsafe.Pointer(&mem[0]),
		shift:    64 - g.sbits,
		nstripes: s,
		slots:    g.slots,
		mask:     g.slots - 1,
		limit:    g.limit,
		maxUsed:  g.slots / 4 * 3,
		capacity: g.capacity,
		keyBytes: g.keyBytes,
		valBytes: g.valBytes,
		varKey:   g.varKey,
		varVal:   g.varVal,
		kw:       g.kw,
		vw:       g.vw,
		esz:      uintptr(g.esz),
		region:   uintptr(g.slots * g.esz),
		seed:     atomic.LoadUint64(u64(mem, offSeed)),
		locks:    make([]robust.Mutex, s),
	}
	if rebuildAt > 0 {
		t.maxUsed = rebuildAt
	}
	t.stripes = unsafe.Add(t.base, headerSize)
	t.regions = unsafe.Add(t.base, headerSize+stripeSize*uintptr(s))
	for i := range t.locks {
		t.locks[i] = newStripeLock((*uint64)(t.word(uint64(i), sLock)), reg, check)
	}
}

// checkLocks reports an error if a stripe lock word could not have been
// written by package robust.
func (t *table) checkLocks() error {
	for s := uint64(0); s < t.nstripes; s++ {
		if !robust.Valid(atomic.LoadUint64(t.word(s, sLock))) {
			return fmt.Errorf("dict: invalid lock word in stripe %d: %w", s, shm.ErrCorrupt)
		}
	}
	return nil
}

func (t *table) word(s uint64, off uintptr) *uint64 {
	return (*uint64)(unsafe.Add(t.stripes, uintptr(s)*stripeSize+off))
}

func (t *table) regionOf(s, r uint64) unsafe.Pointer {
	return unsafe.Add(t.regions, uintptr(2*s+r)*t.region)
}

func (t *table) entry(reg unsafe.Pointer, i uint64) unsafe.Pointer {
	return unsafe.Add(reg, uintptr(i)*t.esz)
}

func ctlOf(ent unsafe.Pointer) *uint64 { return (*uint64)(ent) }

func (t *table) keyOf(ent unsafe.Pointer) unsafe.Pointer { return unsafe.Add(ent, 8) }

func (t *table) valOf(ent unsafe.Pointer, c uint64) unsafe.Pointer {
	return unsafe.Add(ent, uintptr(8+8*t.kw+(c>>2&1)*8*t.vw))
}

// state of a ctl word; 3 (never written) reads as a tombstone.
func state(c uint64) uint64 {
	if s := c & 3; s != 3 {
		return s
	}
	return stTomb
}

// next returns the ctl word of the next version of an entry in state st.
func next(c, st uint64) uint64 { return (c>>2+1)<<2 | st }

// ---- hashing ----

const (
	m1 = 0x9e3779b97f4a7c15
	m2 = 0xbf58476d1ce4e5b9
)

// hash mixes the key words with the Dict's seed: each step multiplies
// the state, xored with the next word, by an odd constant into 128 bits
// and folds the halves together (the "mum" step of wyhash). The top bits
// pick the stripe, the low bits the home slot.
func (t *table) hash(key []uint64) uint64 {
	h := t.seed
	for _, w := range key {
		h = mum(h^w, m1)
	}
	return h
}

// hash1 is hash of a one-word key.
func (t *table) hash1(w uint64) uint64 { return mum(t.seed^w, m1) }

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (t *table) stripeOf(h uint64) uint64 { return h >> t.shift & (t.nstripes - 1) }

// ---- words in shared memory ----

// keyEq compares the key words at p with key, with atomic loads.
func keyEq(p unsafe.Pointer, key []uint64) bool {
	for i, w := range key {
		if atomic.LoadUint64((*uint64)(unsafe.Add(p, 8*i))) != w {
			return false
		}
	}
	return true
}

// copyOut copies len(dst) bytes from the words at src with 8-byte atomic
// loads.
func copyOut(dst []byte, src unsafe.Pointer) {
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		w := atomic.LoadUint64((*uint64)(unsafe.Add(src, i)))
		*(*uint64)(unsafe.Pointer(&dst[i])) = w
	}
	if n < len(dst) {
		w := atomic.LoadUint64((*uint64)(unsafe.Add(src, n)))
		for i := n; i < len(dst); i++ {
			dst[i] = byte(w)
			w >>= 8
		}
	}
}

// storeWord stores w at p. Only the holder of the stripe lock writes, and
// only words that readers will discard unless a later ctl store publishes
// them; plain stores are ordered before that store on the hardware (see
// value.copyIn), and the race detector, which does not know this, gets
// atomic stores.
func storeWord(p unsafe.Pointer, w uint64) {
	if raceEnabled {
		atomic.StoreUint64((*uint64)(p), w)
		return
	}
	*(*uint64)(p) = w
}

// copyIn copies src into the words at dst, the last word zero-padded.
func copyIn(dst unsafe.Pointer, src []byte) {
	n := len(src) &^ 7
	for i := 0; i < n; i += 8 {
		storeWord(unsafe.Add(dst, i), *(*uint64)(unsafe.Pointer(&src[i])))
	}
	if n < len(src) {
		var w uint64
		for i := len(src) - 1; i >= n; i-- {
			w = w<<8 | uint64(src[i])
		}
		storeWord(unsafe.Add(dst, n), w)
	}
}

func copyWords(dst, src unsafe.Pointer, n uint64) {
	for i := uintptr(0); i < uintptr(n); i++ {
		storeWord(unsafe.Add(dst, 8*i), atomic.LoadUint64((*uint64)(unsafe.Add(src, 8*i))))
	}
}

// readVal copies the value at p into dst and returns its length (for the
// bytes form, the stored length, clamped to the longest value: a longer
// one can only come from a corrupting peer).
func (t *table) readVal(p unsafe.Pointer, dst []byte) int {
	if !t.varVal {
		copyOut(dst, p)
		return len(dst)
	}
	n := atomic.LoadUint64((*uint64)(p))
	n = min(n, t.valBytes)
	copyOut(dst[:min(int(n), len(dst))], unsafe.Add(p, 8))
	return int(n)
}

func (t *table) writeVal(p unsafe.Pointer, src []byte) {
	if t.varVal {
		storeWord(p, uint64(len(src)))
		p = unsafe.Add(p, 8)
	}
	copyIn(p, src)
}

// keyLen returns how many key words of the entry at p are in use.
func (t *table) keyLen(p unsafe.Pointer) uint64 {
	if !t.varKey {
		return t.kw
	}
	n := min(atomic.LoadUint64((*uint64)(p)), t.keyBytes)
	return 1 + words(n)
}

// ---- readers ----

// get looks key up without a lock, copying its value into dst. It
// returns the value's length and whether the key is present.
func (t *table) get(key []uint64, h uint64, dst []byte) (int, bool) {
	s := t.stripeOf(h)
	ep := t.word(s, sEpoch)
tries:
	for try := 0; try < maxOptimistic; try++ {
		e := atomic.LoadUint64(ep)
		reg := t.regionOf(s, e&1)
		i := h & t.mask
		for range t.slots {
			ent := t.entry(reg, i)
			c := atomic.LoadUint64(ctlOf(ent))
			switch state(c) {
			case stEmpty:
				if atomic.LoadUint64(ep) == e {
					return 0, false
				}
				continue tries
			case stLive:
				if keyEq(t.keyOf(ent), key) {
					n := t.readVal(t.valOf(ent, c), dst)
					if atomic.LoadUint64(ctlOf(ent)) == c && atomic.LoadUint64(ep) == e {
						return n, true
					}
					continue tries
				}
			}
			i = (i + 1) & t.mask
		}
		// Every slot full: only a corrupting peer leaves no empty slot.
		if atomic.LoadUint64(ep) == e {
			return 0, false
		}
	}
	return t.getLocked(s, key, h, dst)
}

// get1 is get for a one-word key and a one-word value (K and V of at
// most 8 bytes): the same algorithm, without the loops over words.
func (t *table) get1(key uint64) (uint64, bool) {
	h := t.hash1(key)
	s := t.stripeOf(h)
	ep := t.word(s, sEpoch)
tries:
	for try := 0; try < maxOptimistic; try++ {
		e := atomic.LoadUint64(ep)
		reg := t.regionOf(s, e&1)
		i := h & t.mask
		for range t.slots {
			ent := t.entry(reg, i)
			c := atomic.LoadUint64(ctlOf(ent))
			switch c & 3 {
			case stEmpty:
				if atomic.LoadUint64(ep) == e {
					return 0, false
				}
				continue tries
			case stLive:
				if atomic.LoadUint64((*uint64)(unsafe.Add(ent, 8))) == key {
					v := atomic.LoadUint64((*uint64)(unsafe.Add(ent, 16+8*(c>>2&1))))
					if atomic.LoadUint64(ctlOf(ent)) == c && atomic.LoadUint64(ep) == e {
						return v, true
					}
					continue tries
				}
			}
			i = (i + 1) & t.mask
		}
		if atomic.LoadUint64(ep) == e {
			return 0, false
		}
	}
	var v uint64
	k := [1]uint64{key}
	_, ok := t.getLocked(s, k[:], h, unsafe.Slice((*byte)(unsafe.Pointer(&v)), 8))
	return v, ok
}

// lockedReadTimeout bounds how long a Get that keeps losing races waits
// for the stripe lock before it reports the key absent.
const lockedReadTimeout = time.Second

// getLocked is get under the stripe lock, for a reader that lost
// maxOptimistic races in a row: with the lock no writer can move the
// entry. A lock it cannot take within lockedReadTimeout (a corrupting
// peer holding it) makes the key read as absent.
func (t *table) getLocked(s uint64, key []uint64, h uint64, dst []byte) (int, bool) {
	if err := t.lockTimeout(s, lockedReadTimeout); err != nil {
		return 0, false
	}
	defer t.unlock(s)
	i, _, c := t.locate(s, key, h)
	if i < 0 {
		return 0, false
	}
	ent := t.entry(t.active(s), uint64(i))
	return t.readVal(t.valOf(ent, c), dst), true
}

// ---- locking and repair ----

// ErrOwnerDead and ErrNotRecoverable never reach callers: a stripe is
// always repairable (see repair).
func (t *table) lock(s uint64) error { return t.lockUntil(s, time.Time{}) }

func (t *table) lockTimeout(s uint64, d time.Duration) error {
	return t.lockUntil(s, futex.After(d))
}

func (t *table) lockUntil(s uint64, deadline time.Time) error {
	m := &t.locks[s]
	for range 4 {
		err := m.Lock(context.Background(), deadline)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, robust.ErrOwnerDead):
			t.repair(s)
			if cerr := m.Consistent(); cerr != nil {
				m.Unlock()
				return fmt.Errorf("dict: marking stripe %d consistent: %w", s, cerr)
			}
			return nil
		case errors.Is(err, robust.ErrNotRecoverable):
			// Only a corrupting peer leaves a dict lock not recoverable
			// (repair always succeeds): take it and repair.
			if m.Seize() {
				t.repair(s)
				return nil
			}
			continue
		}
		return fmt.Errorf("dict: locking stripe %d: %w", s, err)
	}
	return fmt.Errorf("dict: locking stripe %d: %w", s, robust.ErrNotRecoverable)
}

func (t *table) unlock(s uint64) error {
	if err := t.locks[s].Unlock(); err != nil {
		return fmt.Errorf("dict: unlocking stripe %d: %w", s, err)
	}
	return nil
}

func (t *table) active(s uint64) unsafe.Pointer {
	return t.regionOf(s, atomic.LoadUint64(t.word(s, sEpoch))&1)
}

// repair makes the stripe's derived words true again after its last
// writer died (or a peer corrupted its lock word): it recounts live
// entries and tombstones in the active region, rewriting any ctl word in
// the never-written state 3 as a tombstone. Entries need no repair: every
// change to one is committed by a single store (see the layout).
func (t *table) repair(s uint64) {
	reg := t.active(s)
	var live, tombs uint64
	for i := range t.slots {
		ent := t.entry(reg, i)
		c := atomic.LoadUint64(ctlOf(ent))
		switch c & 3 {
		case stLive:
			live++
		case stTomb:
			tombs++
		case 3:
			atomic.StoreUint64(ctlOf(ent), next(c, stTomb))
			tombs++
		}
	}
	atomic.StoreUint64(t.word(s, sCount), live)
	release.Store64(t.word(s, sTombs), tombs)
	atomic.AddUint64(t.word(s, sRepairs), 1)
}

// ---- writers (stripe lock held) ----

// locate finds key in stripe s: its slot (or -1), the first slot an
// insert may use (tombstone or empty, or -1), and the key's ctl word.
func (t *table) locate(s uint64, key []uint64, h uint64) (slot, free int64, c uint64) {
	reg := t.active(s)
	free = -1
	i := h & t.mask
	for range t.slots {
		ent := t.entry(reg, i)
		c := atomic.LoadUint64(ctlOf(ent))
		switch state(c) {
		case stEmpty:
			if free < 0 {
				free = int64(i)
			}
			return -1, free, 0
		case stLive:
			if keyEq(t.keyOf(ent), key) {
				return int64(i), free, c
			}
		default:
			if free < 0 {
				free = int64(i)
			}
		}
		i = (i + 1) & t.mask
	}
	return -1, free, 0
}

// counts returns the stripe's live and tombstone counts, clamped to the
// region (a corrupting peer may have written anything there).
func (t *table) counts(s uint64) (live, tombs uint64) {
	live = min(atomic.LoadUint64(t.word(s, sCount)), t.slots)
	tombs = min(atomic.LoadUint64(t.word(s, sTombs)), t.slots-live)
	return live, tombs
}

// replace stores a new value for the live entry at slot.
func (t *table) replace(s uint64, slot int64, c uint64, val []byte) {
	ent := t.entry(t.active(s), uint64(slot))
	nc := next(c, stLive)
	t.writeVal(t.valOf(ent, nc), val)
	release.Store64(ctlOf(ent), nc) // publishes the value
}

// replace1 is replace for a one-word value.
func (t *table) replace1(s uint64, slot int64, c, val uint64) {
	ent := t.entry(t.active(s), uint64(slot))
	nc := next(c, stLive)
	storeWord(t.valOf(ent, nc), val)
	release.Store64(ctlOf(ent), nc) // publishes the value
}

// insert adds key (absent from stripe s; free as locate returned it)
// with val. It returns ErrFull when the stripe holds its limit.
func (t *table) insert(s uint64, key []uint64, h uint64, free int64, val []byte) error {
	live, tombs := t.counts(s)
	if live >= t.limit {
		return ErrFull
	}
	reg := t.active(s)
	if free < 0 || state(atomic.LoadUint64(ctlOf(t.entry(reg, uint64(free))))) == stEmpty && live+tombs+1 > t.maxUsed {
		// Using an empty slot would leave too few: rebuild the stripe
		// without its tombstones first.
		t.rebuild(s)
		_, free, _ = t.locate(s, key, h)
		if free < 0 {
			return fmt.Errorf("dict: stripe %d has no free slot: %w", s, shm.ErrCorrupt)
		}
		reg = t.active(s)
		live, tombs = t.counts(s)
	}
	ent := t.entry(reg, uint64(free))
	c := atomic.LoadUint64(ctlOf(ent))
	nc := next(c, stLive)
	kp := t.keyOf(ent)
	for i, w := range key {
		storeWord(unsafe.Add(kp, 8*i), w)
	}
	t.writeVal(t.valOf(ent, nc), val)
	release.Store64(ctlOf(ent), nc) // commits the insert
	release.Store64(t.word(s, sCount), live+1)
	if state(c) == stTomb && tombs > 0 {
		release.Store64(t.word(s, sTombs), tombs-1)
	}
	return nil
}

// remove deletes the live entry at slot. If the next slot is empty, no
// probe sequence runs through this slot, so it becomes empty rather than
// a tombstone, and so do the tombstones right before it.
func (t *table) remove(s uint64, slot int64, c uint64) {
	reg := t.active(s)
	live, tombs := t.counts(s)
	i := uint64(slot)
	ent := t.entry(reg, i)
	if state(atomic.LoadUint64(ctlOf(t.entry(reg, (i+1)&t.mask)))) != stEmpty {
		release.Store64(ctlOf(ent), next(c, stTomb)) // commits the delete
		release.Store64(t.word(s, sCount), live-min(live, 1))
		release.Store64(t.word(s, sTombs), tombs+1)
		return
	}
	release.Store64(ctlOf(ent), next(c, stEmpty)) // commits the delete
	release.Store64(t.word(s, sCount), live-min(live, 1))
	for range t.slots - 1 {
		i = (i - 1) & t.mask
		e := t.entry(reg, i)
		pc := atomic.LoadUint64(ctlOf(e))
		if state(pc) != stTomb {
			break
		}
		release.Store64(ctlOf(e), next(pc, stEmpty))
		tombs -= min(tombs, 1)
		release.Store64(t.word(s, sTombs), tombs)
	}
}

// rebuild copies the live entries of stripe s into its other region,
// without tombstones, and makes that region the active one with one
// store of the epoch. Readers go on reading the old region until then;
// one that was still reading it when the epoch moved retries. A writer
// killed during a rebuild leaves the active region untouched.
func (t *table) rebuild(s uint64) {
	ep := t.word(s, sEpoch)
	e := atomic.LoadUint64(ep)
	src, dst := t.regionOf(s, e&1), t.regionOf(s, (e+1)&1)
	for i := range t.slots {
		storeWord(unsafe.Pointer(ctlOf(t.entry(dst, i))), 0)
	}
	var live uint64
	kbuf := make([]uint64, t.kw)
	for i := range t.slots {
		ent := t.entry(src, i)
		c := atomic.LoadUint64(ctlOf(ent))
		if state(c) != stLive {
			continue
		}
		n := t.keyLen(t.keyOf(ent))
		for j := range n {
			kbuf[j] = atomic.LoadUint64((*uint64)(unsafe.Add(t.keyOf(ent), 8*j)))
		}
		k := t.hash(kbuf[:n]) & t.mask
		for range t.slots {
			if atomic.LoadUint64(ctlOf(t.entry(dst, k))) == stEmpty {
				break
			}
			k = (k + 1) & t.mask
		}
		d := t.entry(dst, k)
		copyWords(t.keyOf(d), t.keyOf(ent), t.kw)
		copyWords(t.valOf(d, 0), t.valOf(ent, c), t.vw)
		storeWord(unsafe.Pointer(ctlOf(d)), stLive) // version 0: copy 0
		live++
	}
	atomic.StoreUint64(t.word(s, sCount), live)
	atomic.StoreUint64(t.word(s, sTombs), 0)
	atomic.StoreUint64(ep, e+1) // publishes the new region
}

// clearStripe empties stripe s: its other region, emptied, becomes the
// active one with one store of the epoch.
func (t *table) clearStripe(s uint64) {
	ep := t.word(s, sEpoch)
	e := atomic.LoadUint64(ep)
	dst := t.regionOf(s, (e+1)&1)
	for i := range t.slots {
		storeWord(unsafe.Pointer(ctlOf(t.entry(dst, i))), 0)
	}
	atomic.StoreUint64(t.word(s, sCount), 0)
	atomic.StoreUint64(t.word(s, sTombs), 0)
	atomic.StoreUint64(ep, e+1)
}

// clear empties every stripe, one after the other.
func (t *table) clear() error {
	for s := range t.nstripes {
		if err := t.lock(s); err != nil {
			return err
		}
		t.clearStripe(s)
		if err := t.unlock(s); err != nil {
			return err
		}
	}
	return nil
}

// length sums the live counts of the stripes.
func (t *table) length() int {
	var n uint64
	for s := range t.nstripes {
		live, _ := t.counts(s)
		n += live
	}
	return int(n)
}

// snapshot appends the live entries of stripe s to buf, each as kw key
// words then vw value words (the current copy), under the stripe lock.
func (t *table) snapshot(s uint64, buf []uint64) ([]uint64, error) {
	if err := t.lock(s); err != nil {
		return buf, err
	}
	reg := t.active(s)
	for i := range t.slots {
		ent := t.entry(reg, i)
		c := atomic.LoadUint64(ctlOf(ent))
		if state(c) != stLive {
			continue
		}
		for j := range t.kw {
			buf = append(buf, atomic.LoadUint64((*uint64)(unsafe.Add(t.keyOf(ent), 8*j))))
		}
		v := t.valOf(ent, c)
		for j := range t.vw {
			buf = append(buf, atomic.LoadUint64((*uint64)(unsafe.Add(v, 8*j))))
		}
	}
	return buf, t.unlock(s)
}

// ---- inspection ----

// StripeState describes one stripe, for inspection.
type StripeState struct {
	Stripe       int
	Len          int    // live entries
	Tombstones   int    // deleted entries still marking probe sequences
	Rebuilds     uint64 // rebuilds and clears (the epoch)
	Repairs      uint64 // times a writer found its predecessor dead
	Held         bool   // a writer holds the stripe lock
	HolderSlot   int    // the holder's slot in the process registry
	HolderPid    int    // the holder's pid, as it saw itself (display only)
	HolderAlive  bool   // whether the registry says the holder lives
	Inconsistent bool   // held by a writer that took it from a dead one
}

// State is a snapshot of a Dict, for inspection. It is not atomic across
// stripes.
type State struct {
	Capacity   int // entries the Dict was created for
	Stripes    int
	Slots      int // slots per stripe region
	Limit      int // live entries a stripe may hold
	Len        int
	Tombstones int
	Held       []StripeState // the stripes whose lock is held
	// Probe lengths in the active regions: slots a Get of a present key
	// reads (mean and max), and slots a Get of an absent key reads, on
	// average over all home slots.
	MeanProbeX100     int // mean probe length of a hit × 100
	MaxProbe          int // longest probe of a hit
	MeanMissProbeX100 int // mean probe length of a miss × 100
	Stripe            []StripeState
}

func (t *table) state() State {
	st := State{Capacity: int(t.capacity), Stripes: int(t.nstripes), Slots: int(t.slots), Limit: int(t.limit)}
	var probes, present, maxp, miss uint64
	for s := range t.nstripes {
		live, tombs := t.counts(s)
		ls := t.locks[s].Load()
		ss := StripeState{
			Stripe: int(s), Len: int(live), Tombstones: int(tombs),
			Rebuilds:     atomic.LoadUint64(t.word(s, sEpoch)),
			Repairs:      atomic.LoadUint64(t.word(s, sRepairs)),
			Held:         ls.Held,
			HolderSlot:   int(ls.Holder.Slot),
			HolderPid:    t.locks[s].Registry().Pid(ls.Holder),
			HolderAlive:  ls.Held && t.locks[s].Registry().Alive(ls.Holder),
			Inconsistent: ls.Inconsistent,
		}
		st.Len += ss.Len
		st.Tombstones += ss.Tombstones
		st.Stripe = append(st.Stripe, ss)
		if ss.Held {
			st.Held = append(st.Held, ss)
		}
		reg := t.active(s)
		kbuf := make([]uint64, t.kw)
		for i := range t.slots {
			ent := t.entry(reg, i)
			c := atomic.LoadUint64(ctlOf(ent))
			if state(c) == stLive {
				n := t.keyLen(t.keyOf(ent))
				for j := range n {
					kbuf[j] = atomic.LoadUint64((*uint64)(unsafe.Add(t.keyOf(ent), 8*j)))
				}
				home := t.hash(kbuf[:n]) & t.mask
				d := (i-home)&t.mask + 1
				probes += d
				present++
				maxp = max(maxp, d)
			}
		}
		miss += t.missProbes(reg)
	}
	if present > 0 {
		st.MeanProbeX100 = int(probes * 100 / present)
	}
	st.MaxProbe = int(maxp)
	st.MeanMissProbeX100 = int(miss * 100 / (t.slots * t.nstripes))
	return st
}

// missProbes sums, over every home slot of the region, the slots a Get
// of an absent key starting there reads: up to and including the first
// empty slot.
func (t *table) missProbes(reg unsafe.Pointer) uint64 {
	empty := func(i uint64) bool { return state(atomic.LoadUint64(ctlOf(t.entry(reg, i&t.mask)))) == stEmpty }
	e0 := uint64(0)
	for e0 < t.slots && !empty(e0) {
		e0++
	}
	if e0 == t.slots {
		return t.slots * t.slots
	}
	sum, d := uint64(1), uint64(1)
	for k := uint64(1); k < t.slots; k++ {
		i := (e0 - k) & t.mask
		if empty(i) {
			d = 1
		} else {
			d++
		}
		sum += d
	}
	return sum
}
