package shm

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
)

// The attach table records which processes have each object open, so that
// Destroy can refuse while another live process uses it. It follows the
// process registry: one row per directory entry, one bit per registry
// slot (bit t-1 of the row for slot t). A process sets its bit in an
// object's row when it opens (Lookup) or creates (Alloc) the object, and
// clears it when it has released every hold it took on that object: the
// handles tied to it with Keep, collected by the garbage collector, and
// raw holds given back with Segment.Release.
//
// A bit says nothing about a process that has died: Destroy asks the
// registry whether the process now holding the slot is alive, and a
// process that claims a slot clears the slot's bits that its dead
// predecessor left before it opens anything. Bits of a dead process
// therefore never block Destroy for longer than it takes the registry to
// see the death (at once: the kernel drops its slot lock).
//
// Dekker's handshake makes open and destroy exclusive: Lookup sets its bit
// and then loads the entry's state; Destroy stores stateDying and then
// loads the row (all sequentially consistent). Either Destroy sees the
// bit and gives up, or Lookup sees the entry dying or free and retries.

// holds is one process's count of holds per directory entry of one file,
// shared by every Segment of that file in the process (they share the
// registry slot, and so the bits).
type holds struct {
	n     map[int]int64 // directory entry index → holds
	byOff map[int64]int // object offset → entry index of its latest hold
	offOf map[int]int64 // entry index → object offset of its latest hold (byOff's inverse)
	segs  int           // Segments of this file open in the process
}

var held struct {
	mu sync.Mutex
	m  map[*proc.Registry]*holds
}

// attachBit returns the word of the attach table of m that holds slot's
// bit in entry i's row, and the bit.
func (m *mapping) attachBit(i int, slot uint32) (*uint64, uint64) {
	off := int(m.attachOff) + (i*m.words+int(slot-1)/64)*8
	return u64(m.mem, off), 1 << ((slot - 1) % 64)
}

// attachRow returns entry i's row of the attach table.
func (m *mapping) attachRow(i int) []uint64 {
	return unsafe.Slice(u64(m.mem, int(m.attachOff)+i*m.words*8), m.words)
}

// ownSlot returns this process's registry slot, or 0 when the registry is
// blind (its holds cannot be recorded: see Caveats).
func (m *mapping) ownSlot() uint32 {
	id := m.reg.Self()
	if id.Slot == 0 || int(id.Slot) > m.slots {
		return 0
	}
	return id.Slot
}

// joinHolds registers a new mapping of its registry's file. The first one
// of a claim clears the bits of its slot that an earlier, dead holder of
// the slot left, before anything is opened through it.
func (m *mapping) joinHolds(capacity int) {
	held.mu.Lock()
	defer held.mu.Unlock()
	h := held.m[m.reg]
	if h == nil {
		h = &holds{n: make(map[int]int64), byOff: make(map[int64]int), offOf: make(map[int]int64)}
		if held.m == nil {
			held.m = make(map[*proc.Registry]*holds)
		}
		held.m[m.reg] = h
		if slot := m.ownSlot(); slot != 0 {
			for i := 0; i < capacity; i++ {
				w, bit := m.attachBit(i, slot)
				atomic.AndUint64(w, ^bit)
			}
		}
	}
	h.segs++
}

// leaveHolds is joinHolds undone, when the mapping is released.
func (m *mapping) leaveHolds() {
	held.mu.Lock()
	defer held.mu.Unlock()
	if h := held.m[m.reg]; h != nil {
		if h.segs--; h.segs <= 0 {
			delete(held.m, m.reg)
		}
	}
}

// hold records one more hold of this process on entry i (the object at
// off) and sets the process's bit in the entry's row.
func (m *mapping) hold(i int, off int64) {
	held.mu.Lock()
	defer held.mu.Unlock()
	h := held.m[m.reg]
	if h == nil {
		return
	}
	h.n[i]++
	if old, ok := h.offOf[i]; ok && old != off && h.byOff[old] == i {
		delete(h.byOff, old)
	}
	h.offOf[i] = off
	h.byOff[off] = i
	if slot := m.ownSlot(); slot != 0 {
		w, bit := m.attachBit(i, slot)
		atomic.OrUint64(w, bit) // before the caller loads the entry's state again: see above
	}
}

// unhold gives back one hold on entry i and clears the process's bit with
// the last one.
func (m *mapping) unhold(i int) {
	held.mu.Lock()
	defer held.mu.Unlock()
	h := held.m[m.reg]
	if h == nil || h.n[i] <= 0 {
		return
	}
	if h.n[i]--; h.n[i] > 0 {
		return
	}
	delete(h.n, i)
	if off, ok := h.offOf[i]; ok {
		delete(h.offOf, i)
		if h.byOff[off] == i {
			delete(h.byOff, off)
		}
	}
	if slot := m.ownSlot(); slot != 0 {
		w, bit := m.attachBit(i, slot)
		atomic.AndUint64(w, ^bit)
	}
}

// heldEntry returns the entry index of this process's latest hold on the
// object at off, or -1.
func (m *mapping) heldEntry(off int64) int {
	held.mu.Lock()
	defer held.mu.Unlock()
	if h := held.m[m.reg]; h != nil {
		if i, ok := h.byOff[off]; ok && h.n[i] > 0 {
			return i
		}
	}
	return -1
}

// holdsOn returns this process's holds on entry i.
func (m *mapping) holdsOn(i int) int64 {
	held.mu.Lock()
	defer held.mu.Unlock()
	if h := held.m[m.reg]; h != nil {
		return h.n[i]
	}
	return 0
}
