package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
)

// testHookLocked, when set, runs inside Alloc while it holds the segment
// lock, after the entry is marked initializing. Tests use it to die there.
var testHookLocked func()

// entry returns directory entry i of the header bytes b.
func entry(b []byte, i int) []byte {
	o := dirOffset + i*entrySize
	return b[o : o+entrySize : o+entrySize]
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("object name %q: want 1..%d bytes without NUL: %w", name, MaxNameLen, ErrInvalidName)
	}
	return nil
}

// bounds returns the offset and size of entry e if the object lies inside
// the object area [headerSize, size) of the segment, 64-byte aligned.
func bounds(e []byte, headerSize, size int64) (off, n uint64, err error) {
	off, n = le.Uint64(e[eOffset:]), le.Uint64(e[eSize:])
	end := off + n
	if n == 0 || off < uint64(headerSize) || off%ObjectAlign != 0 || end < off || end > uint64(size) {
		return 0, 0, fmt.Errorf("entry offset %d size %d outside [%d, %d): %w", off, n, headerSize, size, ErrCorrupt)
	}
	return off, n, nil
}

// allocSane reports whether a is an allocation offset the segment could
// have: inside [headerSize, size] and aligned.
func (s *Segment) allocSane(a uint64) bool {
	return a >= uint64(s.hdr.headerSize) && a <= uint64(s.hdr.size) && a%ObjectAlign == 0
}

// Alloc creates the named object: it reserves a zeroed, ObjectAlign-aligned
// region of spec.Size bytes, calls init on it while the entry is marked
// initializing, and publishes the entry ready when init returns nil. A name
// that is taken (ready or initializing) gives ErrExist: of two processes
// creating one name at once, one wins and the other gets ErrExist.
//
// The directory is scanned and the entry reserved under the segment lock;
// the region is zeroed and init runs after the lock is released, so a slow
// init does not hold up other allocations. If init returns an error (or
// panics), the entry is freed and the name can be used again, but the space
// stays used: space is never reused. A name whose entry was left
// initializing by a creator that has died is reclaimed (see the package
// documentation). No room gives ErrFull; so does a full directory.
func (s *Segment) Alloc(spec Spec, init func(mem []byte) error) ([]byte, error) {
	mem, err := s.alloc(spec, init)
	if err != nil {
		return nil, fmt.Errorf("shm: allocating %q in %s: %w", spec.Name, s.path, err)
	}
	return mem, nil
}

func (s *Segment) alloc(spec Spec, init func([]byte) error) ([]byte, error) {
	if s.mem == nil {
		return nil, ErrClosed
	}
	if err := checkName(spec.Name); err != nil {
		return nil, err
	}
	if spec.Size <= 0 {
		return nil, fmt.Errorf("object size %d: %w", spec.Size, ErrInvalidSize)
	}
	i, off, err := s.claim(spec)
	if err != nil {
		return nil, err
	}
	e := entry(s.mem, i)
	mem := s.mem[off : off+spec.Size : off+spec.Size]
	published := false
	defer func() {
		if !published {
			// Frees the entry (init failed or panicked); its space stays used.
			atomic.StoreUint32(u32(e, eState), stateFree)
		}
	}()
	clear(mem)
	if init != nil {
		if err := init(mem); err != nil {
			return nil, fmt.Errorf("initializing: %w", err)
		}
	}
	atomic.StoreUint32(u32(e, eState), stateReady) // publishes the object: fields and contents
	published = true
	return mem, nil
}

// claim takes the segment lock, reserves a directory entry and space for
// spec, marks the entry initializing, and releases the lock. It returns the
// entry index and the object offset.
func (s *Segment) claim(spec Spec) (int, int64, error) {
	if w := atomic.LoadUint64(u64(s.mem, offLock)); !robust.Valid(w) {
		return 0, 0, fmt.Errorf("segment lock word %#x: %w", w, ErrCorrupt)
	}
	switch err := s.lock.Lock(context.Background(), time.Now().Add(lockTimeout)); err {
	case nil:
	case robust.ErrOwnerDead:
		// A process died inside Alloc: repair what the lock guards.
		s.repair()
		if err := s.lock.Consistent(); err != nil {
			return 0, 0, errors.Join(fmt.Errorf("segment lock: %w", err), s.lock.Unlock())
		}
	case futex.ErrTimeout:
		return 0, 0, fmt.Errorf("segment lock held by registry slot %d for over %v: %w", s.lock.Load().Holder.Slot, lockTimeout, err)
	default:
		return 0, 0, fmt.Errorf("segment lock: %w", err)
	}
	i, off, err := s.claimLocked(spec)
	if uerr := s.lock.Unlock(); uerr != nil {
		return 0, 0, errors.Join(err, fmt.Errorf("releasing segment lock: %w", uerr))
	}
	return i, off, err
}

func (s *Segment) claimLocked(spec Spec) (int, int64, error) {
	alloc := atomic.LoadUint64(u64(s.mem, offAlloc))
	if !s.allocSane(alloc) {
		return 0, 0, fmt.Errorf("allocation offset %d: %w", alloc, ErrCorrupt)
	}
	free := -1
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		switch st := loadState(e); st {
		case stateFree:
			if free < 0 {
				free = i
			}
		case stateInit, stateReady:
			if !nameEq(e[eName:], spec.Name) {
				continue
			}
			creator := proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))
			if st == stateInit && !s.reg.Alive(creator) {
				// Its creator died initializing it: nobody will publish
				// it. Reclaim the entry; its space stays used.
				atomic.StoreUint32(u32(e, eState), stateFree)
				if free < 0 || i < free {
					free = i
				}
				continue
			}
			if st == stateInit {
				return 0, 0, fmt.Errorf("being created by pid %d: %w", atomic.LoadUint32(u32(e, eCreatorPid)), ErrExist)
			}
			return 0, 0, ErrExist
		default:
			return 0, 0, fmt.Errorf("directory entry %d: state %d: %w", i, st, ErrCorrupt)
		}
	}
	if free < 0 {
		return 0, 0, fmt.Errorf("directory has no free entry (%d entries): %w", s.hdr.capacity, ErrFull)
	}
	need := alignUp(spec.Size, ObjectAlign)
	if avail := uint64(s.hdr.size) - alloc; need < 0 || uint64(need) > avail {
		return 0, 0, fmt.Errorf("need %d bytes, %d left: %w", spec.Size, avail, ErrFull)
	}
	e := entry(s.mem, free)
	atomic.StoreUint32(u32(e, eKind), uint32(spec.Kind)|uint32(spec.KindVersion)<<16)
	atomic.StoreUint64(u64(e, eFingerprint), spec.Fingerprint)
	atomic.StoreUint64(u64(e, eOffset), alloc)
	atomic.StoreUint64(u64(e, eSize), uint64(spec.Size))
	atomic.StoreUint64(u64(e, eCreator), s.reg.SelfPacked())
	atomic.StoreUint32(u32(e, eCreatorPid), uint32(os.Getpid()))
	clear(e[eName+copy(e[eName:], spec.Name):])
	atomic.StoreUint64(u64(s.mem, offAlloc), alloc+uint64(need))
	// Publishes the reservation: from here the name is taken. A process
	// dying before this store leaves the entry free (and the space used).
	atomic.StoreUint32(u32(e, eState), stateInit)
	if testHookLocked != nil {
		testHookLocked()
	}
	return free, int64(alloc), nil
}

// repair restores the directory after a process died holding the segment
// lock: it frees entries left initializing by dead creators and makes the
// allocation offset lie past every object.
func (s *Segment) repair() {
	end := uint64(s.hdr.headerSize)
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		st := loadState(e)
		if st != stateInit && st != stateReady {
			continue
		}
		if st == stateInit && !s.reg.Alive(proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))) {
			atomic.StoreUint32(u32(e, eState), stateFree)
			continue
		}
		if off, n, err := bounds(e, s.hdr.headerSize, s.hdr.size); err == nil {
			end = max(end, uint64(alignUp(int64(off+n), ObjectAlign)))
		}
	}
	if a := atomic.LoadUint64(u64(s.mem, offAlloc)); !s.allocSane(a) || a < end {
		atomic.StoreUint64(u64(s.mem, offAlloc), end)
	}
}

// Lookup finds the named object, checks kind, kind version, fingerprint
// and (when spec.Size is nonzero) size, and returns its memory. It waits up
// to Options.ReadyTimeout for an object that is still initializing.
//
// A missing name gives ErrNotExist; another kind or kind version,
// ErrKindMismatch; another fingerprint or size, ErrTypeMismatch; an object
// still initializing after the wait, ErrNotReady (the message says whether
// its creator has died); an entry that points outside the segment,
// ErrCorrupt. Lookup takes no lock and, for a ready object, makes no
// syscall and no allocation.
func (s *Segment) Lookup(spec Spec) ([]byte, error) {
	mem, err := s.lookup(spec)
	if err != nil {
		return nil, fmt.Errorf("shm: looking up %q in %s: %w", spec.Name, s.path, err)
	}
	return mem, nil
}

func (s *Segment) lookup(spec Spec) ([]byte, error) {
	if s.mem == nil {
		return nil, ErrClosed
	}
	if err := checkName(spec.Name); err != nil {
		return nil, err
	}
	var deadline time.Time
	pause := 50 * time.Microsecond
	for {
		i, st := s.find(spec.Name)
		if i < 0 {
			return nil, ErrNotExist
		}
		e := entry(s.mem, i)
		switch st {
		case stateReady:
			return s.check(e, spec)
		case stateInit:
		default:
			return nil, fmt.Errorf("directory entry %d: state %d: %w", i, st, ErrCorrupt)
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(s.ready)
		} else if now.After(deadline) {
			creator := proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))
			pid := atomic.LoadUint32(u32(e, eCreatorPid))
			if !s.reg.Alive(creator) {
				return nil, fmt.Errorf("initializing for over %v; its creator, pid %d, has died: %w", s.ready, pid, ErrNotReady)
			}
			return nil, fmt.Errorf("initializing by pid %d for over %v: %w", pid, s.ready, ErrNotReady)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// find returns the index and state of the first entry in use named name,
// or -1.
func (s *Segment) find(name string) (int, uint32) {
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		if st := loadState(e); st != stateFree && nameEq(e[eName:], name) {
			return i, st
		}
	}
	return -1, 0
}

// check compares the ready entry e with spec and returns the object.
func (s *Segment) check(e []byte, spec Spec) ([]byte, error) {
	off, n, err := bounds(e, s.hdr.headerSize, s.hdr.size)
	if err != nil {
		return nil, err
	}
	kv := le.Uint32(e[eKind:])
	if k, v := Kind(kv), uint16(kv>>16); k != spec.Kind || v != spec.KindVersion {
		return nil, fmt.Errorf("object is a %v (version %d), want a %v (version %d): %w", k, v, spec.Kind, spec.KindVersion, ErrKindMismatch)
	}
	if fp := le.Uint64(e[eFingerprint:]); fp != spec.Fingerprint {
		return nil, fmt.Errorf("type fingerprint %#x, want %#x: %w", fp, spec.Fingerprint, ErrTypeMismatch)
	}
	if spec.Size != 0 && n != uint64(spec.Size) {
		return nil, fmt.Errorf("object size %d, want %d: %w", n, spec.Size, ErrTypeMismatch)
	}
	return s.mem[off : off+n : off+n], nil
}

// Objects lists the directory: every entry in use, ready or initializing.
// Entries that are corrupt are left out, and the first problem is returned
// (wrapping ErrCorrupt) with the objects that could be read.
func (s *Segment) Objects() ([]Object, error) {
	if s.mem == nil {
		return nil, fmt.Errorf("shm: listing %s: %w", s.path, ErrClosed)
	}
	objs, _, err := listObjects(s.mem[:s.hdr.headerSize], s.hdr)
	if err != nil {
		return objs, fmt.Errorf("shm: listing %s: %w", s.path, err)
	}
	return objs, nil
}

// listObjects decodes the directory in the header bytes b. It returns the
// valid objects, the number of entries in use, and the first problem.
func listObjects(b []byte, h header) ([]Object, int, error) {
	var (
		objs  []Object
		used  int
		first error
	)
	for i := 0; i < h.capacity; i++ {
		e := entry(b, i)
		st := loadState(e)
		if st == stateFree {
			continue
		}
		used++
		o, err := decodeEntry(e, st, h.headerSize, h.size)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("directory entry %d: %w", i, err)
			}
			continue
		}
		objs = append(objs, o)
	}
	return objs, used, first
}

// OrOpen is the body of every object's OpenOrCreate: it calls create, and
// if the name is taken (ErrExist), open. Between processes it is
// race-free: of several creators one wins Alloc and the others get
// ErrExist and open what it made, waiting (as Lookup does) while it is
// still initializing. A name that holds another kind of object fails in
// open with ErrKindMismatch.
func OrOpen[T any](create, open func() (T, error)) (T, error) {
	x, err := create()
	if errors.Is(err, ErrExist) {
		return open()
	}
	return x, err
}
