package shm

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"

	"github.com/mpipc/mpipc/internal/proc"
)

// Lifetime of a mapping. Object handles (a lock.Lock, a ringbuf.Queue, …)
// point straight into their segment's mapping, so that an operation is a
// few atomic instructions with no check in front of them. If Close
// unmapped the segment while such a handle was still in use, its next
// operation would fault (SIGSEGV) — or, worse, touch whatever the address
// space put there later. So the mapping is reference counted: the Segment
// holds one reference until Close, and every handle that Keep ties to it
// holds one until the garbage collector finds the handle unreachable
// (runtime.AddCleanup). The mapping is unmapped when the last reference
// goes. Using an object after its segment's Close therefore keeps working
// on the shared memory, at no cost on any operation; the cost is that the
// address space of a closed segment stays mapped until its handles are
// dropped and collected.
//
// The process's slot in the segment's process registry has the same
// lifetime as the mapping: a handle that still works must still name a
// live process, or its peers would take its locks and claims for a dead
// process's. So the registry is released with the last reference too.

// mapping is the memory of one Segment, shared with the cleanups of the
// handles placed in it.
type mapping struct {
	mem  []byte
	reg  *proc.Registry
	refs atomic.Int64 // the Segment's own (until Close) plus one per kept handle

	// The attach table's geometry (see attach.go).
	attachOff int64
	words     int
	slots     int
}

func newMapping(mem []byte, reg *proc.Registry, h header) *mapping {
	m := &mapping{mem: mem, reg: reg, attachOff: h.attachOffset(), words: attachWords(h.slots), slots: h.slots}
	m.refs.Store(1)
	m.joinHolds(h.capacity)
	return m
}

// release drops a reference, unmapping the memory and leaving the process
// registry with the last one.
func (m *mapping) release() error {
	if m.refs.Add(-1) != 0 {
		return nil
	}
	m.leaveHolds()
	mem := m.mem
	m.mem = nil
	err := munmap(mem)
	if rerr := m.reg.Release(); rerr != nil {
		err = errors.Join(err, fmt.Errorf("leaving process registry: %w", rerr))
	}
	return err
}

// Keep keeps the mapping of seg for as long as the object handle h is
// reachable, even after seg.Close. Every package of mpipc calls it in its
// Create and Open on the handle it returns, so that using an object after
// its segment's Close never faults. It does nothing if seg is closed (its
// Alloc and Lookup then fail anyway) or h is nil.
//
// objs are the memory of the objects h uses, as Alloc or Lookup returned
// it: Keep hands the hold that call took on each (see Segment.Destroy) to
// h, and the hold is given back when h is collected. A hold that is not
// handed to a handle (Keep without objs) lasts until Segment.Release or
// until this process's last mapping of the segment goes.
func Keep[T any](seg *Segment, h *T, objs ...[]byte) {
	if seg == nil || h == nil || seg.m == nil {
		return
	}
	m := seg.m
	var entries []int
	for _, o := range objs {
		if off, ok := seg.offsetOf(o); ok {
			if i := m.heldEntry(off); i >= 0 {
				entries = append(entries, i)
			}
		}
	}
	for {
		n := m.refs.Load()
		if n <= 0 {
			return
		}
		if m.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	if len(entries) == 0 {
		runtime.AddCleanup(h, func(m *mapping) { m.release() }, m)
		return
	}
	runtime.AddCleanup(h, func(k kept) {
		for _, i := range k.entries {
			k.m.unholdSafe(i)
		}
		k.m.release()
	}, kept{m, entries})
}

// unholdSafe is unhold for a handle's cleanup, which runs whenever the
// garbage collector says: a segment file truncated under the mapping by a
// hostile writer must not crash the process there with SIGBUS. The fault
// becomes a panic, recovered; the bit stays (and names a process that
// cannot use the object anyway).
func (m *mapping) unholdSafe(i int) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
		}
	}()
	m.unhold(i)
}

// kept is what a handle's cleanup releases.
type kept struct {
	m       *mapping
	entries []int
}
