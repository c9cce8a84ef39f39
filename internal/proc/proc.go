// Package proc is mpipc's process registry: who is attached to a shared
// file, and whether a process named in a shared record is still alive.
//
// # Why not pids
//
// A pid means nothing in another pid namespace (two containers of one pod
// share memory but not pids), and /proc may be hidden or absent. Neither
// may ever make a live process look dead, so liveness is not decided from
// pids at all.
//
// # The registry
//
// A registry is a table of slots in shared memory (each segment has one,
// after its directory) plus one kernel lock per slot: an open file
// description lock (fcntl F_OFD_SETLK, a write lock on the byte at
// LockBase+i of the shared file). A process claims slot i by taking that
// lock on a private, close-on-exec open of the file of its own; the kernel
// drops the lock when the last descriptor of that open file description
// closes, which is at the latest when the process dies, whatever namespace
// it runs in. A process stopped with SIGSTOP keeps its lock: it is alive.
//
// Each slot has a generation that advances with every claim, so a record
// names a process as (slot, generation): an ID. The process named by an ID
// is alive while the slot's generation is still the ID's and the slot's
// byte is locked (F_OFD_GETLK from any other description). A later process
// in the same slot has another generation: there is no reuse question.
//
// The lock must be taken on a description nobody else shares. An inherited
// descriptor (a memfd passed through exec.Cmd.ExtraFiles) shares its
// parent's description, and with it the parent's locks, so Attach never
// locks through the descriptor it is given: it opens the file again — the
// path for a named file, /proc/self/fd/N for any file — and checks that it
// got the same file (device and inode). Where that is impossible (a memfd
// without /proc), the registry is blind: see Blind.
//
// # Slot record
//
// Every slot is SlotSize bytes in the table, little-endian:
//
//	+0   uint32  generation: advanced (atomically) by every claim
//	+4   uint32  pid, as the process sees itself; 0 after a clean release
//	+8   uint64  inode of the process's pid namespace (0: unknown)
//	+16  uint32  effective uid
//	+20  uint32  reserved
//	+24  int64   claimed at, Unix nanoseconds
//
// Only the generation decides anything; the rest is for display
// (mpipc stat). A new table starts each slot at a random generation (see
// InitTable), so that the identities of its first processes are not small
// numbers a corrupting peer or a fuzzer writes by chance.
package proc

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// SlotBits is the number of low bits of an owner word that name the slot
// (robust lock words keep it in their futex half).
const SlotBits = 17

// MaxSlots is the largest number of slots a registry may have.
const MaxSlots = 1<<16 - 1

// DefaultSlots is the registry size of a segment when the caller does not
// say.
const DefaultSlots = 1024

// SlotSize is the size of one slot record in the table.
const SlotSize = 32

// LockBase is the file offset of slot 1's lock byte; slot i locks the byte
// at LockBase+i-1. Locks beyond the end of a file are fine, and this one
// is far beyond any segment.
const LockBase = 1 << 62

// blindBase is where the slot numbers of blind identities start: above any
// registry's slots, within SlotBits.
const blindBase = 1 << 16

// ID names a process in a registry: a slot (1-based; 0 means nobody) and
// the generation of the claim. The zero ID names nobody.
type ID struct {
	Slot uint32
	Gen  uint32
}

// Pack returns id as one 64-bit word: generation in the high half, slot in
// the low.
func (id ID) Pack() uint64 { return uint64(id.Gen)<<32 | uint64(id.Slot) }

// Unpack is the inverse of [ID.Pack] (bits of the low half above SlotBits
// are dropped).
func Unpack(w uint64) ID { return ID{Slot: uint32(w) & (1<<SlotBits - 1), Gen: uint32(w >> 32)} }

// Blind reports whether id is a blind identity (see [Blind]).
func (id ID) Blind() bool { return id.Slot >= blindBase }

// Errors.
var (
	// ErrFull is returned by Attach when every slot of the registry is held
	// by a live process.
	ErrFull = errors.New("mpipc: process registry full: too many processes attached")
)

// Registry is one process's handle on a process registry. Obtain one with
// Attach (a segment does this for you) or Blind. It is safe for
// concurrent use.
type Registry struct {
	table    []byte // n slot records, this handle's own mapping (nil: blind)
	mapd     []byte // the page-aligned mapping behind table
	mapStart int64  // file offset of mapd
	n        uint32
	fd       int // the private description holding our slot lock; -1 if blind
	self     ID
	key      fileKey
	refs     int // under attached.mu
}

// Self returns the identity this process holds in the registry.
func (r *Registry) Self() ID { return r.self }

// SelfPacked returns Self().Pack().
func (r *Registry) SelfPacked() uint64 { return r.self.Pack() }

// Slots returns the number of slots (0 for a blind registry).
func (r *Registry) Slots() int { return int(r.n) }

// IsBlind reports whether the registry cannot tell the living from the dead
// (see Blind).
func (r *Registry) IsBlind() bool { return r.fd < 0 }

// Alive reports whether the process id names may be alive. It is exact for
// ids of this registry: a dead process is reported dead (its slot's lock
// is gone or the slot was claimed again), a live one — stopped or in
// another pid namespace — alive. It costs one atomic load and, for a
// record of another process, one fcntl; it does not allocate.
//
// What cannot be proven dead is alive: anyone at all when r is blind. An
// id outside the registry (a slot number it does not have) is garbage from
// a corrupting peer and counts as dead, so that what it holds can be
// recovered; so does a blind identity, which only a process that failed to
// name the registry everyone else shares could have written: every
// process sharing an object must name the same registry.
func (r *Registry) Alive(id ID) bool {
	switch {
	case id.Slot == 0:
		return false
	case id == r.self:
		return true
	case r.fd < 0:
		return true
	case id.Slot > r.n:
		return false // garbage, or a blind process that should have named this registry
	}
	if atomic.LoadUint32(r.gen(id.Slot)) != id.Gen {
		return false // the slot was claimed again: its old holder is gone
	}
	held, err := lockedAt(r.fd, id.Slot)
	if err != nil {
		return true // cannot tell: waiting is safer than stealing
	}
	return held
}

func (r *Registry) gen(slot uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.table[int(slot-1)*SlotSize]))
}

// Slot is one slot record, for display.
type Slot struct {
	Slot  int       // 1-based slot number
	Gen   uint32    // generation of the latest claim
	Pid   int       // pid as the process saw itself (0: released cleanly)
	PidNS uint64    // inode of its pid namespace (0: unknown)
	UID   int       // effective uid
	Since time.Time // when it claimed the slot
	Alive bool      // the slot's lock is held
}

// Inspect reads the slot records of table (n records) and asks the kernel,
// through fd (any open description of the shared file that holds no slot
// lock, or this process's own registry), which are held. Slots never
// claimed are left out.
func Inspect(fd int, table []byte, n int) []Slot {
	var out []Slot
	for i := 0; i < n && (i+1)*SlotSize <= len(table); i++ {
		rec := table[i*SlotSize : (i+1)*SlotSize]
		gen := atomic.LoadUint32((*uint32)(unsafe.Pointer(&rec[0])))
		held, err := lockedAt(fd, uint32(i+1))
		if err != nil {
			held = true
		}
		if !held && atomic.LoadUint64((*uint64)(unsafe.Pointer(&rec[24]))) == 0 {
			continue // never claimed
		}
		out = append(out, Slot{
			Slot:  i + 1,
			Gen:   gen,
			Pid:   int(binary.LittleEndian.Uint32(rec[4:])),
			PidNS: binary.LittleEndian.Uint64(rec[8:]),
			UID:   int(binary.LittleEndian.Uint32(rec[16:])),
			Since: time.Unix(0, int64(binary.LittleEndian.Uint64(rec[24:]))),
			Alive: held,
		})
	}
	return out
}

// Inspect is the package function Inspect for this registry: its slots, as
// this process sees them.
func (r *Registry) Inspect() []Slot {
	if r.fd < 0 {
		return nil
	}
	s := Inspect(r.fd, r.table, int(r.n))
	for i := range s {
		if uint32(s[i].Slot) == r.self.Slot {
			s[i].Alive = true // our own lock does not conflict with us
		}
	}
	return s
}

type fileKey struct{ dev, ino uint64 }

// attached holds the registries this process is attached to, one per
// file: every handle on one file in this process shares one slot.
var attached struct {
	mu sync.Mutex
	m  map[fileKey]*Registry
}

var blind = struct {
	once sync.Once
	r    *Registry
}{}

// Blind returns this process's blind registry: the one used by objects in
// memory that has no registry (Init/Attach without Options.Registry), and
// by a segment that could not open a private description of its file. Its
// identity is random (a slot number above every registry's, so it never
// names a real slot), and it proves nobody dead: every other identity is
// alive to it (its own identity counts as dead to a real registry: see
// Alive). A lock
// whose holder died is then never taken over — waiters time out or are
// cancelled instead — which is the only safe answer without a registry.
func Blind() *Registry {
	blind.once.Do(func() {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			binary.LittleEndian.PutUint64(b[:], uint64(time.Now().UnixNano())^uint64(os.Getpid())<<20)
		}
		v := binary.LittleEndian.Uint64(b[:])
		slot := blindBase + uint32(v)%(1<<SlotBits-blindBase)
		gen := uint32(v>>32) | 1
		blind.r = &Registry{fd: -1, self: ID{Slot: slot, Gen: gen}}
	})
	return blind.r
}

// Or returns r, or the blind registry when r is nil.
func Or(r *Registry) *Registry {
	if r == nil {
		return Blind()
	}
	return r
}

// Pid returns the pid recorded for id, for display: 0 when the slot has
// been claimed by another process since, or id is not of this registry.
func (r *Registry) Pid(id ID) int {
	if id == r.self {
		return os.Getpid()
	}
	if r.table == nil || id.Slot == 0 || id.Slot > r.n || atomic.LoadUint32(r.gen(id.Slot)) != id.Gen {
		return 0
	}
	return int(atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.table[int(id.Slot-1)*SlotSize+4]))))
}

// AliveBits is Alive for a record that keeps only some bits of the
// generation: id.Gen holds them, and mask says which. The process is
// taken to be alive when its slot is held and the slot's generation agrees
// with id.Gen on those bits.
func (r *Registry) AliveBits(id ID, mask uint32) bool {
	switch {
	case id.Slot == 0:
		return false
	case id.Slot == r.self.Slot && id.Gen&mask == r.self.Gen&mask:
		return true
	case r.fd < 0:
		return true
	case id.Slot > r.n:
		return false
	}
	if atomic.LoadUint32(r.gen(id.Slot))&mask != id.Gen&mask {
		return false
	}
	held, err := lockedAt(r.fd, id.Slot)
	return held || err != nil
}

// InitTable gives each of the n slot records in table (zeroed, not yet
// shared) a random first generation.
func InitTable(table []byte, n int) {
	n = min(n, len(table)/SlotSize)
	b := make([]byte, 4*n)
	if _, err := rand.Read(b); err != nil {
		return // generations stay 0: correct, only more guessable
	}
	for i := range n {
		copy(table[i*SlotSize:i*SlotSize+4], b[4*i:])
	}
}
