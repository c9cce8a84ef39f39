package dict

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
)

// Binary layout of a Dict (little-endian, 64-byte aligned):
//
//	offset 0    uint32  magic "mpdc"
//	offset 4    uint32  layout version
//	offset 8    uint32  flags: bit 0 = keys carry a length (bytes form),
//	                           bit 1 = values carry a length (bytes form)
//	offset 12   uint32  log2 of the number of stripes S
//	offset 16   uint64  key bytes: size of K, or the longest key
//	offset 24   uint64  value bytes: size of V, or the longest value
//	offset 32   uint64  fingerprint of K (0 for the bytes form)
//	offset 40   uint64  fingerprint of V (0 for the bytes form)
//	offset 48   uint64  capacity asked for at Create
//	offset 56   uint64  R: slots per region, a power of two
//	offset 64   uint64  hash seed
//	offset 72   56 bytes reserved, zero
//	offset 128  S stripe headers of 128 bytes
//	then        2·S regions of R entries: stripe s owns regions 2s and 2s+1
//
// A stripe header:
//
//	offset 0    uint64  stripe lock word (package internal/robust)
//	offset 8    uint64  live entries in the active region (derived: recounted on repair)
//	offset 16   uint64  tombstones in the active region (derived: recounted on repair)
//	offset 24   uint64  repairs: times a writer found the stripe's last writer dead
//	offset 64   uint64  epoch: the active region is epoch&1; it changes only
//	                    when a writer has rebuilt the stripe into the other region
//
// The epoch sits on its own cache line because every Get reads it and
// every write in the stripe writes the lock word.
//
// An entry, 8·(1+kw+2·vw) bytes, 8-byte aligned:
//
//	word 0        ctl: version<<2 | state (0 empty, 1 live, 2 tombstone;
//	              3 is never written and reads as a tombstone)
//	words 1..kw   the key: K with its padding zeroed, or length then bytes
//	then vw words value copy 0: V, or length then bytes
//	then vw words value copy 1
//
// The live value is the copy named by the low bit of the version. Every
// change of an entry stores ctl once, with the version one higher: a
// writer first writes the key (only into a slot that is not live) and the
// value copy the next version names, then stores ctl, which publishes
// both. That store is the commit point of every operation, so a writer
// killed at any instruction leaves each entry as it was or as it was
// going to be; only the two counts of the stripe header can be off, and
// the next writer recounts them.
const (
	// Version is the layout version of a Dict.
	Version = 1
	// Align is the alignment a Dict needs (a cache line).
	Align = 64

	magic      = 0x6364706d // "mpdc"
	headerSize = 128
	stripeSize = 128

	offMagic    = 0
	offVersion  = 4
	offFlags    = 8
	offSBits    = 12
	offKeyBytes = 16
	offValBytes = 24
	offKFP      = 32
	offVFP      = 40
	offCap      = 48
	offSlots    = 56
	offSeed     = 64

	sLock    = 0
	sCount   = 8
	sTombs   = 16
	sRepairs = 24
	sEpoch   = 64

	flagVarKey = 1 << 0
	flagVarVal = 1 << 1

	stEmpty = 0
	stLive  = 1
	stTomb  = 2

	// Bounds on what a header may say, so that sizes cannot overflow.
	maxSBits    = 10      // 1024 stripes
	maxSlots    = 1 << 30 // per region
	maxKeyBytes = 1 << 16
	maxValBytes = 1 << 24
	minSlots    = 8

	// bytesFP is the directory fingerprint of the bytes form.
	bytesFP = 0x7365747962 // "bytes"
)

// maxOptimistic is how many times a Get retries because entries it read
// changed under it before it takes the stripe lock to guarantee progress.
const maxOptimistic = 64

// MaxStripes is the largest Options.Stripes.
const MaxStripes = 1 << maxSBits

// geometry is the shape of a Dict, computed from its parameters or read
// (and checked) from a header.
type geometry struct {
	sbits    uint   // log2 stripes
	slots    uint64 // R, per region
	limit    uint64 // live entries a stripe may hold
	capacity uint64
	keyBytes uint64
	valBytes uint64
	varKey   bool
	varVal   bool
	kw, vw   uint64 // key and value words
	esz      uint64 // entry bytes
	size     uint64 // total bytes
}

// stripeLimit is how many live entries each of s stripes may hold for a
// Dict of the given capacity: all of them with one stripe; with more, the
// mean plus four standard deviations plus 8, so that keys spread by the
// hash fill the Dict to its capacity before any stripe is full.
func stripeLimit(capacity, s uint64) uint64 {
	if s == 1 {
		return capacity
	}
	mean := (capacity + s - 1) / s
	return mean + uint64(math.Ceil(4*math.Sqrt(float64(mean)))) + 8
}

// defaultStripes is about one stripe per 64 entries of capacity, a power
// of two from 1 to 64.
func defaultStripes(capacity uint64) uint {
	var b uint
	for b < 6 && uint64(64)<<b < capacity {
		b++
	}
	return b
}

func words(n uint64) uint64 { return (n + 7) / 8 }

// newGeometry computes the shape of a new Dict.
func newGeometry(capacity int, keyBytes, valBytes uint64, varKey, varVal bool, stripes int) (geometry, error) {
	if capacity <= 0 || uint64(capacity) > maxSlots/2 {
		return geometry{}, fmt.Errorf("dict: capacity %d out of range 1..%d: %w", capacity, maxSlots/2, shm.ErrInvalidSize)
	}
	var sbits uint
	switch {
	case stripes == 0:
		sbits = defaultStripes(uint64(capacity))
	case stripes < 0 || stripes > MaxStripes:
		return geometry{}, fmt.Errorf("dict: %d stripes out of range 1..%d: %w", stripes, MaxStripes, shm.ErrInvalidSize)
	default:
		sbits = uint(bits.Len(uint(stripes - 1)))
	}
	g := geometry{sbits: sbits, capacity: uint64(capacity), keyBytes: keyBytes, valBytes: valBytes, varKey: varKey, varVal: varVal}
	g.limit = stripeLimit(g.capacity, 1<<sbits)
	g.slots = minSlots
	for g.slots < 2*g.limit {
		g.slots <<= 1
	}
	if err := g.finish(); err != nil {
		return geometry{}, err
	}
	return g, nil
}

// finish derives the sizes and checks the bounds.
func (g *geometry) finish() error {
	if g.sbits > maxSBits {
		return fmt.Errorf("dict: 2^%d stripes: %w", g.sbits, shm.ErrInvalidSize)
	}
	if g.slots < minSlots || g.slots > maxSlots || g.slots&(g.slots-1) != 0 {
		return fmt.Errorf("dict: %d slots per region: %w", g.slots, shm.ErrInvalidSize)
	}
	if g.keyBytes == 0 || g.keyBytes > maxKeyBytes || g.valBytes > maxValBytes || (!g.varVal && g.valBytes == 0) {
		return fmt.Errorf("dict: key of %d bytes, value of %d bytes: %w", g.keyBytes, g.valBytes, shm.ErrInvalidSize)
	}
	g.kw, g.vw = words(g.keyBytes), words(g.valBytes)
	if g.varKey {
		g.kw++
	}
	if g.varVal {
		g.vw++
	}
	g.esz = 8 * (1 + g.kw + 2*g.vw)
	s := uint64(1) << g.sbits
	if g.limit == 0 || g.limit > g.slots/2 {
		return fmt.Errorf("dict: %d entries per stripe in %d slots: %w", g.limit, g.slots, shm.ErrInvalidSize)
	}
	hi, region := bits.Mul64(g.slots, g.esz)
	if hi != 0 {
		return fmt.Errorf("dict: region too large: %w", shm.ErrInvalidSize)
	}
	hi, all := bits.Mul64(region, 2*s)
	if hi != 0 || all > math.MaxInt/2 { // MaxInt: a 32-bit int must hold the size too
		return fmt.Errorf("dict: too large: %w", shm.ErrInvalidSize)
	}
	g.size = headerSize + stripeSize*s + all
	return nil
}

// readGeometry reads and checks the shape stored in a header.
func readGeometry(mem []byte) (geometry, error) {
	if len(mem) < headerSize {
		return geometry{}, fmt.Errorf("dict: memory is %d bytes, need at least %d: %w", len(mem), headerSize, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return geometry{}, fmt.Errorf("dict: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	if atomic.LoadUint32(u32(mem, offMagic)) != magic {
		return geometry{}, fmt.Errorf("dict: no dict in memory (bad magic): %w", shm.ErrCorrupt)
	}
	if v := atomic.LoadUint32(u32(mem, offVersion)); v != Version {
		return geometry{}, fmt.Errorf("dict: layout version %d, want %d: %w", v, Version, shm.ErrCorrupt)
	}
	flags := atomic.LoadUint32(u32(mem, offFlags))
	if flags&^(flagVarKey|flagVarVal) != 0 {
		return geometry{}, fmt.Errorf("dict: unknown flags %#x: %w", flags, shm.ErrCorrupt)
	}
	g := geometry{
		sbits:    uint(atomic.LoadUint32(u32(mem, offSBits))),
		slots:    atomic.LoadUint64(u64(mem, offSlots)),
		capacity: atomic.LoadUint64(u64(mem, offCap)),
		keyBytes: atomic.LoadUint64(u64(mem, offKeyBytes)),
		valBytes: atomic.LoadUint64(u64(mem, offValBytes)),
		varKey:   flags&flagVarKey != 0,
		varVal:   flags&flagVarVal != 0,
	}
	if g.sbits > maxSBits || g.capacity == 0 || g.capacity > maxSlots/2 {
		return geometry{}, fmt.Errorf("dict: 2^%d stripes, capacity %d: %w", g.sbits, g.capacity, shm.ErrCorrupt)
	}
	g.limit = stripeLimit(g.capacity, 1<<g.sbits)
	if err := g.finish(); err != nil {
		return geometry{}, fmt.Errorf("%w: %w", err, shm.ErrCorrupt)
	}
	if uint64(len(mem)) < g.size {
		return geometry{}, fmt.Errorf("dict: memory is %d bytes, the dict needs %d: %w", len(mem), g.size, shm.ErrCorrupt)
	}
	return g, nil
}

func (g *geometry) flags() uint32 {
	var f uint32
	if g.varKey {
		f |= flagVarKey
	}
	if g.varVal {
		f |= flagVarVal
	}
	return f
}

func u32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func u64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

// initMem writes an empty Dict of shape g into mem; the magic, stored
// last, publishes it.
func initMem(mem []byte, g geometry, kfp, vfp uint64) error {
	if len(mem) == 0 || uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("dict: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	if uint64(len(mem)) < g.size {
		return fmt.Errorf("dict: memory is %d bytes, the dict needs %d: %w", len(mem), g.size, shm.ErrCorrupt)
	}
	clear(mem[:g.size])
	atomic.StoreUint32(u32(mem, offVersion), Version)
	atomic.StoreUint32(u32(mem, offFlags), g.flags())
	atomic.StoreUint32(u32(mem, offSBits), uint32(g.sbits))
	atomic.StoreUint64(u64(mem, offKeyBytes), g.keyBytes)
	atomic.StoreUint64(u64(mem, offValBytes), g.valBytes)
	atomic.StoreUint64(u64(mem, offKFP), kfp)
	atomic.StoreUint64(u64(mem, offVFP), vfp)
	atomic.StoreUint64(u64(mem, offCap), g.capacity)
	atomic.StoreUint64(u64(mem, offSlots), g.slots)
	atomic.StoreUint64(u64(mem, offSeed), rand.Uint64())
	return nil
}

func publish(mem []byte) { atomic.StoreUint32(u32(mem, offMagic), magic) }

// newStripeLock makes the handle on a stripe's lock word. It is the one
// place where the dict constructs a robust lock.
func newStripeLock(w *uint64, reg *proc.Registry, check time.Duration) robust.Mutex {
	return robust.New(w, reg, check)
}

func loadFP(mem []byte) (kfp, vfp uint64) {
	return atomic.LoadUint64(u64(mem, offKFP)), atomic.LoadUint64(u64(mem, offVFP))
}
