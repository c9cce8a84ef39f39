package array

import (
	"errors"
	"fmt"
	"iter"
	"reflect"

	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
)

// RawArray is a fixed-length array of T shared between processes without
// a lock: Python's multiprocessing.RawArray. Nothing is synchronized:
// concurrent writes to one element, or a write during a read of it, race
// exactly as on an ordinary slice (elements of 8 bytes or less are
// naturally aligned, so on amd64 and arm64 they are not torn by the
// hardware, but nothing orders them). Coordinate with a Lock, Event or
// Queue. Obtain one with CreateRaw, OpenRaw, InitRaw or AttachRaw; it may
// attach to an Array's memory.
type RawArray[T any] struct {
	_ noCopy
	c core[T]
}

// InitRaw initializes a RawArray of n elements in mem, as Init does.
func InitRaw[T any](mem []byte, n int, init []T) (*RawArray[T], error) {
	a := &RawArray[T]{}
	if err := a.c.init(mem, n, init, 0); err != nil {
		return nil, err
	}
	publish(mem)
	return a, nil
}

// AttachRaw returns a handle on a RawArray[T] (or Array[T]) in mem.
func AttachRaw[T any](mem []byte) (*RawArray[T], error) {
	a := &RawArray[T]{}
	if _, err := a.c.attach(mem); err != nil {
		return nil, err
	}
	return a, nil
}

// CreateRaw places a new RawArray of n elements named name in seg.
func CreateRaw[T any](seg *shm.Segment, name string, n int, init []T) (*RawArray[T], error) {
	info, err := elemType[T]()
	if err != nil {
		return nil, err
	}
	sz, err := size(info, n)
	if err != nil {
		return nil, err
	}
	var a *RawArray[T]
	mem, err := seg.Alloc(spec(name, info, sz), func(mem []byte) (err error) {
		a, err = InitRaw(mem, n, init)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("array: creating %q: %w", name, err)
	}
	shm.Keep(seg, a, mem)
	return a, nil
}

// OpenRaw attaches to the RawArray[T] (or Array[T]) named name in seg.
func OpenRaw[T any](seg *shm.Segment, name string) (*RawArray[T], error) {
	info, err := elemType[T]()
	if err != nil {
		return nil, err
	}
	mem, err := seg.Lookup(spec(name, info, 0))
	if err != nil {
		return nil, fmt.Errorf("array: opening %q: %w", name, err)
	}
	h, err := AttachRaw[T](mem)
	if err == nil {
		shm.Keep(seg, h, mem)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreateRaw opens the RawArray[T] (of n elements from init if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreateRaw[T any](seg *shm.Segment, name string, n int, init []T) (*RawArray[T], error) {
	return shm.OrOpen(func() (*RawArray[T], error) { return CreateRaw(seg, name, n, init) },
		func() (*RawArray[T], error) { return OpenRaw[T](seg, name) })
}

// View returns the elements themselves: a []T whose backing array is the
// shared memory (zero copy). Reads and writes through it are
// unsynchronized. It must not be used after the segment or mapping is
// closed.
func (a *RawArray[T]) View() []T { return a.c.s }

// Len returns the number of elements.
func (a *RawArray[T]) Len() int { return len(a.c.s) }

// At returns element i. It panics if i is out of range.
func (a *RawArray[T]) At(i int) T { return a.c.s[i] }

// Set sets element i. It panics if i is out of range.
func (a *RawArray[T]) Set(i int, x T) { a.c.s[i] = x }

// CopyOut is copy(dst, arr[from:]).
func (a *RawArray[T]) CopyOut(dst []T, from int) int { return a.c.copyOut(dst, from) }

// CopyIn is copy(arr[at:], src).
func (a *RawArray[T]) CopyIn(src []T, at int) int { return a.c.copyIn(src, at) }

// Slice returns a copy of elements [i, j).
func (a *RawArray[T]) Slice(i, j int) []T { return a.c.slice(i, j) }

// All returns an iterator over (index, element) pairs, read as the loop
// goes.
func (a *RawArray[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for i := range a.c.s {
			if !yield(i, a.c.s[i]) {
				return
			}
		}
	}
}

// Value is Array.Value without the lock.
func (a *RawArray[T]) Value() []byte { return a.c.value() }

// SetValue is Array.SetValue without the lock.
func (a *RawArray[T]) SetValue(v []byte) error { return a.c.setValue(v) }

// Raw is Array.Raw without the lock.
func (a *RawArray[T]) Raw() []byte { return a.c.raw() }

// SetRaw is Array.SetRaw without the lock.
func (a *RawArray[T]) SetRaw(v []byte) error { return a.c.setRaw(v) }

// SetSlice is Array.SetSlice without the lock.
func (a *RawArray[T]) SetSlice(i, j int, src []T) error {
	if err := a.c.checkSlice(i, j, len(src)); err != nil {
		return err
	}
	copy(a.c.s[i:j], src)
	return nil
}

// State returns a snapshot of the RawArray.
func (a *RawArray[T]) State() State { return a.c.state() }

// ReadBytes returns a copy of the first min(Len, limit) elements of the
// Array or RawArray named name in seg, as the bytes of their layout, and
// its length Len, for a tool that learns the element type t only at run
// time (mpipc stat -type) and would otherwise need one Array[T] compiled
// per T. The elements are read without the lock, as a RawArray reads
// them. t must be the recorded element type: another one fails with an
// error wrapping shm.ErrTypeMismatch that gives both element sizes.
func ReadBytes(seg *shm.Segment, name string, t reflect.Type, limit int) (b []byte, n int, err error) {
	info, err := typeinfo.OfType(t)
	if err != nil {
		return nil, 0, fmt.Errorf("array: %w", err)
	}
	sp := spec(name, info, 0)
	mem, err := seg.Lookup(sp)
	if errors.Is(err, shm.ErrTypeMismatch) {
		// Read the recorded element size for the message: checkHeader
		// compares it with info's.
		sp.Fingerprint = 0
		if objs, _ := seg.Objects(); objs != nil {
			for _, o := range objs {
				if o.Name == name {
					sp.Fingerprint = o.Fingerprint
				}
			}
		}
		if mem, lerr := seg.Lookup(sp); lerr == nil {
			defer seg.Release(mem)
			if _, _, _, herr := checkHeader(mem, info); herr != nil {
				return nil, 0, fmt.Errorf("array: %q: %w", name, herr)
			}
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("array: opening %q: %w", name, err)
	}
	defer seg.Release(mem) // the bytes are copied out before it
	_, n, _, err = checkHeader(mem, info)
	if err != nil {
		return nil, 0, err
	}
	k := min(n, max(limit, 0))
	b = make([]byte, uintptr(k)*info.Size)
	copy(b, mem[headerSize:])
	return b, n, nil
}
