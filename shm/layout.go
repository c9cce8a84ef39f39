package shm

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
)

// The binary layout of a segment; doc.go has it as a table. All integers
// are little-endian. Words that change after creation (the lock word, the
// allocation offset, an entry's state) are read and written with
// sync/atomic only.
const (
	// LayoutVersion is the segment layout version this package writes and
	// reads. Open fails with ErrVersion on any other.
	//
	// Version 2 added the process registry (internal/proc) after the
	// directory, and owner records name registry slots instead of pids.
	// Version 3 added the attach table after the registry (which processes
	// have each object open), the "destroying" entry state, and retired
	// the allocation offset: free space is what the directory leaves
	// uncovered, so a destroyed object's space is reused.
	LayoutVersion = 3

	// Magic is the first word of every segment: "mpsg" in file byte order.
	// It is stored last, atomically, when the header is complete.
	Magic = 0x6773706d

	// DefaultMaxObjects is the directory capacity of a segment when
	// Options.MaxObjects is zero.
	DefaultMaxObjects = 64
	// MaxMaxObjects is the largest directory capacity a segment may have.
	MaxMaxObjects = 1 << 16

	defaultSize = 1 << 20

	// Fixed, checksummed fields (bytes 0..63).
	offMagic      = 0  // uint32 Magic, published last
	offVersion    = 4  // uint32 LayoutVersion
	offHeaderSize = 8  // uint32 bytes before the first object
	offCapacity   = 12 // uint32 directory entries
	offSize       = 16 // uint64 total segment size
	offCreator    = 24 // uint64 creator's pid, as it saw itself (display only)
	offCreated    = 32 // int64 creation time, Unix nanoseconds
	offEntrySize  = 40 // uint32 entrySize
	offDirOffset  = 44 // uint32 dirOffset
	offRegSlots   = 48 // uint32 process registry slots
	offRegOffset  = 52 // uint32 process registry table offset (after the directory)
	offChecksum   = 56 // uint64 FNV-1a 64 of bytes 0..55
	fixedLen      = 64

	// Mutable header words, each on its own cache line.
	offLock     = 64  // uint64 robust lock word (internal/robust)
	offReserved = 128 // uint64 zero (the allocation offset of version 2)

	dirOffset = 192 // the directory: capacity entries of entrySize bytes

	// A directory entry.
	entrySize    = 96
	eState       = 0  // uint32 stateFree, stateInit, stateReady, stateDying or stateGone
	eKind        = 4  // uint16 Kind, then uint16 kind version (one uint32)
	eFingerprint = 8  // uint64 type fingerprint
	eOffset      = 16 // uint64 object offset from the segment start
	eSize        = 24 // uint64 object size in bytes
	eCreator     = 32 // uint64 creator's registry identity (proc.ID.Pack)
	eCreatorPid  = 40 // uint32 creator's pid, as it saw itself (display only)
	eIncarnation = 44 // uint32 advanced by every Alloc that takes the entry
	eName        = 48 // [48]byte name, NUL-padded; at least one NUL
	nameField    = entrySize - eName

	stateFree  = 0 // unused; every other field is meaningless
	stateInit  = 1 // reserved and being initialized by its creator
	stateReady = 2 // published: immutable until destroyed
	// stateDying: a Destroy holding the segment lock is checking who has
	// the object open; it ends ready again (refused) or free. Seen only
	// while the destroyer holds the lock, or after it died there (the
	// next holder's repair makes it ready again).
	stateDying = 3
	// stateGone: used once and free again (destroyed, abandoned by a dead
	// creator, or its init failed). Free for a new object, but unlike
	// stateFree it does not end a lookup's probe (see find), until no probe
	// can need it (collapseGone).
	stateGone = 4
)

var le = binary.LittleEndian

// littleEndian: the layout is little-endian, but its changing words are
// read and written with sync/atomic in the processor's order, so segments
// work only where the two agree.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// regOffsetFor is the offset of the process registry of a segment whose
// directory holds capacity entries.
func regOffsetFor(capacity int) int64 {
	return alignUp(dirOffset+int64(capacity)*entrySize, ObjectAlign)
}

// attachOffsetFor is the offset of the attach table: one row per directory
// entry, each attachWords(slots) 64-bit words, after the registry.
func attachOffsetFor(capacity, slots int) int64 {
	return alignUp(regOffsetFor(capacity)+int64(slots)*proc.SlotSize, ObjectAlign)
}

// attachWords is the number of 64-bit words in one attach row: one bit
// per registry slot.
func attachWords(slots int) int { return (slots + 63) / 64 }

// headerSizeFor is the size of the header of a segment whose directory
// holds capacity entries and whose registry has slots slots: the offset of
// the first object.
func headerSizeFor(capacity, slots int) int64 {
	return alignUp(attachOffsetFor(capacity, slots)+int64(capacity)*int64(attachWords(slots))*8, ObjectAlign)
}

// alignUp rounds n up to a multiple of a (a power of two). It returns a
// negative number on overflow.
func alignUp(n, a int64) int64 {
	if n > math.MaxInt64-(a-1) {
		return -1
	}
	return (n + a - 1) &^ (a - 1)
}

// checksum is FNV-1a 64 over b: easy to compute in any language.
func checksum(b []byte) uint64 { return fnv1a(b) }

// fnv1a is FNV-1a 64 of b: the header checksum, and the directory's hash
// of a name (see home).
func fnv1a[B ~string | ~[]byte](b B) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= 1099511628211
	}
	return h
}

// header is the decoded fixed part of a segment header.
type header struct {
	headerSize int64
	capacity   int
	slots      int // process registry slots
	size       int64
	creator    int // pid, display only
	created    int64
}

func (h *header) regOffset() int64 { return regOffsetFor(h.capacity) }

func (h *header) attachOffset() int64 { return attachOffsetFor(h.capacity, h.slots) }

// encode writes the fixed fields of h, magic and checksum included, into b.
func (h *header) encode(b []byte) {
	le.PutUint32(b[offMagic:], Magic)
	le.PutUint32(b[offVersion:], LayoutVersion)
	le.PutUint32(b[offHeaderSize:], uint32(h.headerSize))
	le.PutUint32(b[offCapacity:], uint32(h.capacity))
	le.PutUint64(b[offSize:], uint64(h.size))
	le.PutUint64(b[offCreator:], uint64(uint32(h.creator)))
	le.PutUint64(b[offCreated:], uint64(h.created))
	le.PutUint32(b[offEntrySize:], entrySize)
	le.PutUint32(b[offDirOffset:], dirOffset)
	le.PutUint32(b[offRegSlots:], uint32(h.slots))
	le.PutUint32(b[offRegOffset:], uint32(h.regOffset()))
	le.PutUint64(b[offChecksum:], checksum(b[:offChecksum]))
}

// parseHeader validates the fixed fields in b (the first bytes of a file
// whose size is fileSize) in a fixed order: magic, version, checksum,
// sanity, size. It touches nothing but b.
func parseHeader(b []byte, fileSize int64) (header, error) {
	var h header
	if len(b) < 4 || le.Uint32(b[offMagic:]) != Magic {
		return h, ErrNotSegment
	}
	if len(b) < fixedLen {
		return h, fmt.Errorf("file is %d bytes, shorter than the %d-byte header: %w", len(b), fixedLen, ErrTruncated)
	}
	if v := le.Uint32(b[offVersion:]); v != LayoutVersion {
		return h, fmt.Errorf("layout version %d, want %d: %w", v, LayoutVersion, ErrVersion)
	}
	if sum := checksum(b[:offChecksum]); sum != le.Uint64(b[offChecksum:]) {
		return h, fmt.Errorf("checksum %#x, header says %#x: %w", sum, le.Uint64(b[offChecksum:]), ErrChecksum)
	}
	// The checksum catches accidents; a hostile writer can recompute it, so
	// every field is still checked before it is trusted.
	capacity := le.Uint32(b[offCapacity:])
	slots := le.Uint32(b[offRegSlots:])
	hs := le.Uint32(b[offHeaderSize:])
	size := le.Uint64(b[offSize:])
	switch {
	case le.Uint32(b[offEntrySize:]) != entrySize || le.Uint32(b[offDirOffset:]) != dirOffset:
		return h, fmt.Errorf("directory geometry: %w", ErrCorrupt)
	case capacity < 2 || capacity > 2*MaxMaxObjects || capacity%2 != 0:
		return h, fmt.Errorf("directory capacity %d: %w", capacity, ErrCorrupt)
	case slots < 1 || slots > MaxProcs:
		return h, fmt.Errorf("process registry of %d slots: %w", slots, ErrCorrupt)
	case int64(le.Uint32(b[offRegOffset:])) != regOffsetFor(int(capacity)):
		return h, fmt.Errorf("process registry offset %d: %w", le.Uint32(b[offRegOffset:]), ErrCorrupt)
	case int64(hs) != headerSizeFor(int(capacity), int(slots)):
		return h, fmt.Errorf("header size %d for %d entries and %d registry slots: %w", hs, capacity, slots, ErrCorrupt)
	case size < uint64(hs) || size > math.MaxInt64 || size > uint64(math.MaxInt):
		return h, fmt.Errorf("segment size %d: %w", size, ErrCorrupt)
	}
	if uint64(fileSize) < size || fileSize < 0 {
		return h, fmt.Errorf("file is %d bytes, header says %d: %w", fileSize, size, ErrTruncated)
	}
	h.headerSize = int64(hs)
	h.capacity = int(capacity)
	h.slots = int(slots)
	h.size = int64(size)
	h.creator = int(uint32(le.Uint64(b[offCreator:])))
	h.created = int64(le.Uint64(b[offCreated:]))
	return h, nil
}

func u32(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func u64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

// nameEq reports whether the name field f holds name (which must be valid:
// at most MaxNameLen bytes, no NUL). It does not allocate.
func nameEq(f []byte, name string) bool {
	return f[len(name)] == 0 && string(f[:len(name)]) == name
}

// entryName returns the name in field f, or false if f has no NUL.
func entryName(f []byte) (string, bool) {
	for i, c := range f {
		if c == 0 {
			return string(f[:i]), true
		}
	}
	return "", false
}

// decodeEntry checks and decodes the entry e (with state st, already
// loaded) of a segment of the given sizes. Offsets and sizes are checked
// against the segment so that the object can be sliced without a panic.
func decodeEntry(e []byte, st uint32, headerSize, size int64) (Object, error) {
	var o Object
	if st != stateInit && st != stateReady && st != stateDying {
		return o, fmt.Errorf("entry state %d: %w", st, ErrCorrupt)
	}
	name, ok := entryName(e[eName : eName+nameField])
	if !ok || name == "" {
		return o, fmt.Errorf("entry name is not NUL-terminated or empty: %w", ErrCorrupt)
	}
	kv := le.Uint32(e[eKind:])
	off, sz, err := bounds(e, headerSize, size)
	if err != nil {
		return o, fmt.Errorf("entry %q: %w", name, err)
	}
	o = Object{
		Name:        name,
		Kind:        Kind(kv),
		KindVersion: uint16(kv >> 16),
		Fingerprint: le.Uint64(e[eFingerprint:]),
		Offset:      int64(off),
		Size:        int64(sz),
		Ready:       st != stateInit,
		Creator:     int(le.Uint32(e[eCreatorPid:])),
		CreatorID:   proc.Unpack(le.Uint64(e[eCreator:])),
	}
	return o, nil
}

// loadState reads an entry's state word atomically: the acquire that makes
// the entry's other fields, written before it, visible.
func loadState(e []byte) uint32 { return atomic.LoadUint32(u32(e, eState)) }

func unixTime(ns int64) time.Time { return time.Unix(0, ns) }
