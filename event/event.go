package event

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of an Event (Size bytes, little-endian, Align-aligned):
//
//	offset 0   uint32  state word (see below); the futex word
//	offset 4   uint32  magic "mpev"
//	offset 8   uint32  layout version
//	offset 12  padding to 64 bytes, so the state word owns its cache line
const (
	// Size is the number of bytes an Event occupies.
	Size = 64
	// Align is the alignment an Event needs (a cache line).
	Align = 64
	// Version is the layout version of an Event.
	Version = 1

	magic      = 0x7665706d // "mpev"
	offMagic   = 4
	offVersion = 8
)

// The state word.
//
//	bit  0      set: the flag that Set raises and Clear lowers
//	bit  1      waiters: a waiter may sleep in the kernel; Set must wake
//	bits 2..31  generation: bumped by every Set that raises the flag
//
// A waiter returns true when it finds the flag set or the generation moved
// since it started waiting: a Set followed at once by a Clear still
// releases every waiter that was waiting, in every process, even one that
// only runs after the Clear. The generation wraps after 2^30 Sets; a
// waiter that sleeps through exactly a multiple of 2^30 Sets, each followed
// by a Clear, would miss them.
//
// The waiters bit is a flag, not a count: Set clears it and wakes every
// sleeper, which is what Set must do anyway. A waiter killed while
// registered leaves it set, which costs the next Set one extra wake system
// call.
const (
	flagSet  = 1 << iota // the event is set
	waiters              // a waiter may sleep in the kernel
	genShift = iota      // the generation counts from here
)

// errNoEvent is what Attach reports, wrapped with shm.ErrCorrupt, for
// memory without an Event.
var errNoEvent = errors.New("event: no event in memory")

// Options configure an Event. The zero value (or nil) means the defaults;
// there are none yet, and the struct is here so that the constructors read
// like every other mpipc constructor.
type Options struct{}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Event is a flag shared between processes that processes can wait for:
// Python's multiprocessing.Event. Obtain one with Create or Open (in a
// segment) or Init or Attach (in memory you own); the zero Event is not
// usable.
//
// A Set synchronizes before every Wait it releases and every IsSet that
// reports true because of it, in any process mapping the memory. An Event
// handle must not be copied after first use; it is safe for concurrent use
// by many goroutines.
type Event struct {
	_   noCopy
	w   *uint32
	ctr stats.Counters // this handle's slow-path events
}

func word(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

func check(mem []byte) error {
	if len(mem) < Size {
		return fmt.Errorf("event: memory is %d bytes, need %d: %w", len(mem), Size, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("event: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

// Init initializes a clear Event in mem (at least Size bytes, 8-byte
// aligned; Align recommended) and returns a handle on it. Nothing else may
// use mem while Init runs.
func Init(mem []byte, opts *Options) (*Event, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	atomic.StoreUint32(word(mem, 0), 0)
	atomic.StoreUint32(word(mem, offVersion), Version)
	atomic.StoreUint32(word(mem, offMagic), magic) // publishes the Event
	return &Event{w: word(mem, 0)}, nil
}

// Attach returns a handle on an Event that Init set up in mem, possibly in
// another process. It fails with shm.ErrCorrupt if mem does not hold one.
// Every state word is valid, so nothing else is checked.
func Attach(mem []byte, opts *Options) (*Event, error) {
	if err := check(mem); err != nil {
		return nil, err
	}
	if atomic.LoadUint32(word(mem, offMagic)) != magic ||
		atomic.LoadUint32(word(mem, offVersion)) != Version {
		return nil, fmt.Errorf("%w: %w", errNoEvent, shm.ErrCorrupt)
	}
	return &Event{w: word(mem, 0)}, nil
}

func spec(name string) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindEvent, KindVersion: Version, Size: Size}
}

// Create places a new, clear Event named name in seg. It fails with
// shm.ErrExist if the name is taken.
func Create(seg *shm.Segment, name string, opts *Options) (*Event, error) {
	var e *Event
	mem, err := seg.Alloc(spec(name), func(mem []byte) (err error) {
		e, err = Init(mem, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("event: creating %q: %w", name, err)
	}
	shm.Keep(seg, e, mem)
	stats.Publish(seg.Path(), name, shm.KindEvent.String(), &e.ctr)
	return e, nil
}

// Open attaches to the Event named name in seg.
func Open(seg *shm.Segment, name string, opts *Options) (*Event, error) {
	mem, err := seg.Lookup(spec(name))
	if err != nil {
		return nil, fmt.Errorf("event: opening %q: %w", name, err)
	}
	h, err := Attach(mem, opts)
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindEvent.String(), &h.ctr)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the Event named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, opts *Options) (*Event, error) {
	return shm.OrOpen(func() (*Event, error) { return Create(seg, name, opts) },
		func() (*Event, error) { return Open(seg, name, opts) })
}

// IsSet reports whether the flag is set, with one atomic load.
func (e *Event) IsSet() bool { return atomic.LoadUint32(e.w)&flagSet != 0 }

// Set sets the flag and wakes every waiter in every process. Setting a set
// Event does nothing (one atomic load); Set makes the wake system call only
// when a waiter may sleep.
func (e *Event) Set() {
	old := atomic.LoadUint32(e.w)
	if old&flagSet != 0 {
		return
	}
	e.setSlow(old)
}

func (e *Event) setSlow(old uint32) {
	for {
		if old&flagSet != 0 {
			return
		}
		// Adding 1<<genShift wraps inside the generation bits.
		nw := (old|flagSet)&^waiters + 1<<genShift
		if atomic.CompareAndSwapUint32(e.w, old, nw) {
			if old&waiters != 0 {
				e.ctr.Wake()
				futex.WakeAll(e.w)
			}
			return
		}
		old = atomic.LoadUint32(e.w)
	}
}

// Clear lowers the flag: later Waits block until the next Set. Waiters
// that a Set already released are not affected.
func (e *Event) Clear() {
	for {
		old := atomic.LoadUint32(e.w)
		if old&flagSet == 0 || atomic.CompareAndSwapUint32(e.w, old, old&^flagSet) {
			return
		}
	}
}

// Wait blocks until the flag is set or ctx is done (nil: never). It
// returns nil when the flag was set (by a Set since the call began, even
// if a Clear followed), or ctx.Err().
func (e *Event) Wait(ctx context.Context) error {
	old := atomic.LoadUint32(e.w)
	if old&flagSet != 0 {
		return nil
	}
	return e.waitSlow(ctx, time.Time{}, old)
}

// WaitTimeout waits up to d for the flag and returns it: true if the flag
// was set (by a Set since the call began, even if a Clear followed), false
// if it was not set in time. A d of zero or less returns IsSet.
func (e *Event) WaitTimeout(d time.Duration) bool {
	old := atomic.LoadUint32(e.w)
	if old&flagSet != 0 {
		return true
	}
	if d <= 0 {
		return false
	}
	return e.waitSlow(context.Background(), futex.After(d), old) == nil
}

// released reports whether w shows the event set, or set since generation
// of start.
func released(w, start uint32) bool {
	return w&flagSet != 0 || w>>genShift != start>>genShift
}

func (e *Event) waitSlow(ctx context.Context, deadline time.Time, start uint32) error {
	// Spin first (futex.Spin: the full budget, about a sleep and a wake,
	// unless spins keep failing).
	for i := 0; futex.Spin(i); i++ {
		if released(atomic.LoadUint32(e.w), start) {
			futex.SpinDone(true)
			return nil
		}
	}
	futex.SpinDone(false)
	spun := true
	for {
		old := atomic.LoadUint32(e.w)
		if released(old, start) {
			return nil
		}
		if old&waiters == 0 {
			if !atomic.CompareAndSwapUint32(e.w, old, old|waiters) {
				continue
			}
			old |= waiters
		}
		e.ctr.Sleep(&spun)
		if err := futex.Wait(ctx, e.w, old, deadline); err != nil {
			// A Set that raced with the timeout or the cancellation
			// still counts: Python's wait returns the flag.
			if released(atomic.LoadUint32(e.w), start) {
				return nil
			}
			if err == futex.ErrTimeout {
				e.ctr.Timeout()
			}
			return err
		}
	}
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps while waiting, wakes made by Set, WaitTimeout
// calls that ran out, and waits whose spin ended in sleep. Only slow paths
// count: a Set with nobody waiting and a Wait on a set Event touch none.
func (e *Event) Stats() stats.Stats { return e.ctr.Load() }

// State is a snapshot of an Event, for inspection.
type State struct {
	Set        bool
	Waiters    bool   // a waiter may sleep in the kernel
	Generation uint32 // Sets that raised the flag, modulo 2^30
}

// State returns a snapshot of the event.
func (e *Event) State() State {
	w := atomic.LoadUint32(e.w)
	return State{Set: w&flagSet != 0, Waiters: w&waiters != 0, Generation: w >> genShift}
}
