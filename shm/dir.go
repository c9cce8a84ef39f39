package shm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

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

// Alloc creates the named object: it reserves a zeroed, ObjectAlign-aligned
// region of spec.Size bytes, calls init on it while the entry is marked
// initializing, and publishes the entry ready when init returns nil. A name
// that is taken (ready or initializing) gives ErrExist: of two processes
// creating one name at once, one wins and the other gets ErrExist.
//
// The directory is scanned and the entry and space reserved under the
// segment lock; the region is zeroed and init runs after the lock is
// released, so a slow init does not hold up other allocations. The space
// is the first gap between the objects in the directory that is large
// enough: the space of a destroyed object is reused. If init returns an
// error (or panics), the entry and its space are freed. A name whose entry
// was left initializing by a creator that has died is reclaimed (see the
// package documentation). No room gives ErrFull; so does a full directory.
//
// The creating process holds the object open (see Destroy) until the
// handle that Keep ties to the returned memory is collected, or until
// Release.
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
	var i int
	var off int64
	err := s.locked(func() (err error) {
		i, off, err = s.claimLocked(spec)
		return err
	})
	if err != nil {
		return nil, err
	}
	e := entry(s.mem, i)
	mem := s.mem[off : off+spec.Size : off+spec.Size]
	published := false
	defer func() {
		if !published {
			// Frees the entry and its space (init failed or panicked).
			atomic.StoreUint32(u32(e, eState), stateGone)
			s.m.unhold(i)
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

// locked runs f holding the segment lock. A lock whose holder died is
// taken over after repair has restored what it guards.
func (s *Segment) locked(f func() error) error {
	if w := atomic.LoadUint64(u64(s.mem, offLock)); !robust.Valid(w) {
		return fmt.Errorf("segment lock word %#x: %w", w, ErrCorrupt)
	}
	switch err := s.lock.Lock(context.Background(), time.Now().Add(lockTimeout)); err {
	case nil:
	case robust.ErrOwnerDead:
		// A process died inside Alloc or Destroy: repair what the lock guards.
		s.repair()
		if err := s.lock.Consistent(); err != nil {
			return errors.Join(fmt.Errorf("segment lock: %w", err), s.lock.Unlock())
		}
	case futex.ErrTimeout:
		return fmt.Errorf("segment lock held by registry slot %d for over %v: %w", s.lock.Load().Holder.Slot, lockTimeout, err)
	default:
		return fmt.Errorf("segment lock: %w", err)
	}
	err := f()
	if uerr := s.lock.Unlock(); uerr != nil {
		return errors.Join(err, fmt.Errorf("releasing segment lock: %w", uerr))
	}
	return err
}

// span is the space [off, end) of an object in use.
type span struct{ off, end uint64 }

// claimLocked reserves a directory entry and space for spec, marks the
// entry initializing, and returns the entry index and the object offset.
// The segment lock is held.
func (s *Segment) claimLocked(spec Spec) (int, int64, error) {
	var buf [64]span // the objects of a small directory, without allocating
	used := buf[:0]
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		st := loadState(e)
		switch st {
		case stateFree, stateGone:
			continue
		case stateInit, stateReady, stateDying:
		default:
			return 0, 0, fmt.Errorf("directory entry %d: state %d: %w", i, st, ErrCorrupt)
		}
		if st == stateInit && !s.reg.Alive(proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))) {
			// Its creator died initializing it: nobody will publish it.
			// Reclaim the entry and its space.
			atomic.StoreUint32(u32(e, eState), stateGone)
			continue
		}
		if nameEq(e[eName:], spec.Name) {
			if st == stateInit {
				return 0, 0, fmt.Errorf("being created by pid %d: %w", atomic.LoadUint32(u32(e, eCreatorPid)), ErrExist)
			}
			return 0, 0, ErrExist
		}
		off, n, err := bounds(e, s.hdr.headerSize, s.hdr.size)
		if err != nil {
			return 0, 0, fmt.Errorf("directory entry %d: %w", i, err)
		}
		used = append(used, span{off, off + n})
	}
	if len(used) >= s.hdr.capacity/2 {
		return 0, 0, fmt.Errorf("directory full (%d objects): %w", s.hdr.capacity/2, ErrFull)
	}
	// The new entry is the first free one on the name's probe sequence,
	// so that find, starting at the same place, meets it before any entry
	// never used.
	free := -1
	for k, h := 0, home(spec.Name, s.hdr.capacity); k < s.hdr.capacity; k++ {
		i := (h + k) % s.hdr.capacity
		if st := loadState(entry(s.mem, i)); st == stateFree || st == stateGone {
			free = i
			break
		}
	}
	if free < 0 {
		return 0, 0, fmt.Errorf("directory has no free entry (%d entries): %w", s.hdr.capacity, ErrFull)
	}
	need := alignUp(spec.Size, ObjectAlign)
	off, err := firstFit(used, uint64(s.hdr.headerSize), uint64(s.hdr.size), need)
	if err != nil {
		return 0, 0, err
	}
	e := entry(s.mem, free)
	atomic.StoreUint32(u32(e, eKind), uint32(spec.Kind)|uint32(spec.KindVersion)<<16)
	atomic.StoreUint64(u64(e, eFingerprint), spec.Fingerprint)
	atomic.StoreUint64(u64(e, eOffset), off)
	atomic.StoreUint64(u64(e, eSize), uint64(spec.Size))
	atomic.StoreUint64(u64(e, eCreator), s.reg.SelfPacked())
	atomic.StoreUint32(u32(e, eCreatorPid), uint32(os.Getpid()))
	// A Lookup of the entry's previous object that set its attach bit
	// after that object's Destroy looked must see that the entry changed
	// hands even if the new object has the same name and place, since the
	// row is cleared below (see lookup).
	atomic.AddUint32(u32(e, eIncarnation), 1)
	clear(e[eName+copy(e[eName:], spec.Name):])
	// The row may hold the bits of the processes that had a destroyed
	// object of this entry open; the new object starts with the creator's.
	row := s.m.attachRow(free)
	for k := range row {
		atomic.StoreUint64(&row[k], 0)
	}
	s.m.hold(free, int64(off))
	// Publishes the reservation of the name and the space. A process
	// dying before this store leaves the entry free and the space unused.
	atomic.StoreUint32(u32(e, eState), stateInit)
	if testHookLocked != nil {
		testHookLocked()
	}
	return free, int64(off), nil
}

// firstFit returns the lowest offset in [lo, hi) where need bytes fit
// between the objects used (in any order), which must lie in [lo, hi)
// and not overlap: objects that overlap are ErrCorrupt. It sorts used.
func firstFit(used []span, lo, hi uint64, need int64) (uint64, error) {
	if need <= 0 {
		return 0, fmt.Errorf("object size too large: %w", ErrFull)
	}
	slices.SortFunc(used, func(a, b span) int { return cmp.Compare(a.off, b.off) })
	at, found := lo, false
	for k, u := range used {
		if k > 0 && u.off < used[k-1].end {
			return 0, fmt.Errorf("objects at %d and %d overlap: %w", used[k-1].off, u.off, ErrCorrupt)
		}
		if !found && u.off >= at && u.off-at >= uint64(need) {
			found = true
		}
		if !found {
			at = uint64(alignUp(int64(u.end), ObjectAlign))
		}
	}
	if found || (at <= hi && hi-at >= uint64(need)) {
		return at, nil
	}
	return 0, fmt.Errorf("need %d bytes, no free gap that large in the %d-byte object area: %w", need, hi-lo, ErrFull)
}

// repair restores the directory after a process died holding the segment
// lock: it frees entries left initializing by dead creators (their space
// with them) and makes an entry left being destroyed ready again.
func (s *Segment) repair() {
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		switch loadState(e) {
		case stateInit:
			if !s.reg.Alive(proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))) {
				atomic.StoreUint32(u32(e, eState), stateGone)
			}
		case stateDying:
			atomic.StoreUint32(u32(e, eState), stateReady)
		}
	}
	s.collapseGone()
}

// Lookup finds the named object, checks kind, kind version, fingerprint
// and (when spec.Size is nonzero) size, and returns its memory. It waits up
// to Options.ReadyTimeout for an object that is still initializing.
//
// A missing name gives ErrNotExist (a destroyed one too); another kind or
// kind version, ErrKindMismatch; another fingerprint or size,
// ErrTypeMismatch; an object still initializing after the wait,
// ErrNotReady (the message says whether its creator has died); an entry
// that points outside the segment, ErrCorrupt.
//
// The process holds the object open (see Destroy) from then until the
// handle that Keep ties to the returned memory is collected, or until
// Release. Lookup takes no lock unless the object is being destroyed at
// that moment, and makes no syscall for a ready object.
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
			inc := atomic.LoadUint32(u32(e, eIncarnation))
			mem, err := s.check(e, spec)
			if err != nil {
				return nil, err
			}
			off := int64(addrOf(mem) - addrOf(s.mem))
			s.m.hold(i, off)
			// The hold is published (its bit set); now the entry must
			// still be this object, or a Destroy may have missed the bit.
			// The incarnation tells this object from one created in the
			// same entry since, whose Alloc cleared the row, our bit too.
			if loadState(e) == stateReady && atomic.LoadUint32(u32(e, eIncarnation)) == inc && nameEq(e[eName:], spec.Name) {
				if again, err := s.check(e, spec); err == nil && len(again) == len(mem) && addrOf(again) == addrOf(mem) {
					return mem, nil
				}
			}
			s.m.unhold(i)
			continue
		case stateDying:
			// A Destroy holds the lock: wait for it (or repair after it
			// died) and look again. Dying under the lock is no Destroy's.
			err := s.locked(func() error {
				if loadState(e) == stateDying {
					return fmt.Errorf("directory entry %d: dying, and nobody destroying it: %w", i, ErrCorrupt)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
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

// uintptrOf returns the address of b's first byte.
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// offsetOf returns the offset of b in the segment, if b is a slice of its
// object area.
func (s *Segment) offsetOf(b []byte) (int64, bool) {
	if s.mem == nil || len(b) == 0 {
		return 0, false
	}
	p, lo := addrOf(b), addrOf(s.mem)
	if p < lo+uintptr(s.hdr.headerSize) || p >= lo+uintptr(len(s.mem)) {
		return 0, false
	}
	return int64(p - lo), true
}

// Release gives back the hold that Alloc or Lookup took on the object whose
// memory is mem, for a caller that uses the bytes without a handle tied to
// them by Keep. After Release, mem must not be used unless the caller knows
// that nobody destroys the object. Releasing memory that holds no hold of
// this process does nothing.
func (s *Segment) Release(mem []byte) {
	if off, ok := s.offsetOf(mem); ok {
		if i := s.m.heldEntry(off); i >= 0 {
			s.m.unhold(i)
		}
	}
}

// Destroy removes the named object from the directory and frees its space
// for later objects. It fails with ErrInUse while any live process — this
// one included — holds the object open: a handle to it (from a package's
// Create or Open) not yet collected, or bytes from Alloc or Lookup not
// given back with Release. Holds of processes that have died do not count.
// A missing name gives ErrNotExist; an object still being created by a
// live process, ErrNotReady.
//
// After Destroy, Lookup and every package's Open of the name give
// ErrNotExist, and the name can be created again.
func (s *Segment) Destroy(name string) error {
	if err := s.destroy(name, false); err != nil {
		return fmt.Errorf("shm: destroying %q in %s: %w", name, s.path, err)
	}
	return nil
}

// DestroyForce is Destroy without the check for holders: the caller
// promises that nobody uses the object any more. A handle that is still
// used afterwards — in any process — works on memory that the next object
// created in the segment may be given: its operations and that object's
// corrupt each other.
func (s *Segment) DestroyForce(name string) error {
	if err := s.destroy(name, true); err != nil {
		return fmt.Errorf("shm: destroying %q in %s: %w", name, s.path, err)
	}
	return nil
}

func (s *Segment) destroy(name string, force bool) error {
	if s.mem == nil {
		return ErrClosed
	}
	if err := checkName(name); err != nil {
		return err
	}
	return s.locked(func() error {
		i, st := s.find(name)
		if i < 0 {
			return ErrNotExist
		}
		e := entry(s.mem, i)
		switch st {
		case stateReady:
		case stateInit:
			if s.reg.Alive(proc.Unpack(atomic.LoadUint64(u64(e, eCreator)))) {
				return fmt.Errorf("being created by pid %d: %w", atomic.LoadUint32(u32(e, eCreatorPid)), ErrNotReady)
			}
			atomic.StoreUint32(u32(e, eState), stateGone) // its creator died: nothing to wait for
			s.collapseGone()
			return nil
		default:
			return fmt.Errorf("directory entry %d: state %d: %w", i, st, ErrCorrupt)
		}
		// Announce the destruction, then look for holders: a Lookup that
		// sets its bit after this load sees the entry dying and retries.
		atomic.StoreUint32(u32(e, eState), stateDying)
		if testHookDying != nil {
			testHookDying()
		}
		if !force {
			if err := s.holders(i); err != nil {
				atomic.StoreUint32(u32(e, eState), stateReady)
				return err
			}
		}
		// Publishes the free space: from here a new object may be given it.
		atomic.StoreUint32(u32(e, eState), stateGone)
		s.collapseGone()
		return nil
	})
}

// collapseGone makes never-used (stateFree) again every run of entries
// free again (stateGone) that ends just before a never-used one, as a
// linear-probing table may (dict's remove does the same): a probe for an
// entry in use never passes a never-used entry, so none passes such a run
// either. Without it every entry of a long-churned directory ends up
// stateGone, and each lookup of a missing name (the first half of every
// OpenOrCreate) walks the whole table. The segment lock is held; a
// lock-free find that meets an entry made free here stops there, rightly
// for the same reason.
func (s *Segment) collapseGone() {
	n := s.hdr.capacity
	for i := 0; i < n; i++ {
		if loadState(entry(s.mem, i)) != stateFree {
			continue
		}
		for j, k := (i+n-1)%n, 1; k < n; j, k = (j+n-1)%n, k+1 {
			e := entry(s.mem, j)
			if loadState(e) != stateGone {
				break
			}
			atomic.StoreUint32(u32(e, eState), stateFree)
		}
	}
}

// testHookDying, when set, runs inside Destroy after the entry is marked
// dying. Tests use it to die there.
var testHookDying func()

// holders returns ErrInUse, naming them, if live processes hold entry i.
func (s *Segment) holders(i int) error {
	var pids []int
	// This process's own holds are counted in memory, not read from its
	// bit, which a corrupting peer could have set.
	self := s.m.holdsOn(i) > 0
	row := s.m.attachRow(i)
	for k := range row {
		w := atomic.LoadUint64(&row[k])
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &^= 1 << b
			slot := uint32(k*64 + b + 1)
			if int(slot) > s.hdr.slots {
				continue // beyond the registry: garbage, nobody's
			}
			if slot == s.m.ownSlot() {
				continue
			}
			id := proc.ID{Slot: slot, Gen: atomic.LoadUint32(u32(s.mem, int(s.hdr.regOffset())+int(slot-1)*proc.SlotSize))}
			if s.reg.Alive(id) {
				pids = append(pids, s.reg.Pid(id))
			}
		}
	}
	switch {
	case self && len(pids) > 0:
		return fmt.Errorf("open in this process and in pids %v: %w", pids, ErrInUse)
	case self:
		return fmt.Errorf("this process holds a handle on it (drop it and let it be collected, or call Release on raw bytes): %w", ErrInUse)
	case len(pids) > 0:
		return fmt.Errorf("open in pids %v: %w", pids, ErrInUse)
	}
	return nil
}

// find returns the index and state of the entry in use named name, or -1.
//
// The directory is a hash table with linear probing: an object's entry is
// the first free one from home(name) on at its creation (claimLocked, under
// the segment lock), and an entry freed becomes stateGone, which a probe
// passes, unless no probe can reach past it (collapseGone), so the probe
// may stop at the first stateFree entry.
// The table has two entries per object it may hold (Options.MaxObjects), so
// it is never more than half full and a probe is short: a lookup costs a
// few entries, not the size of the directory. Whatever the entries hold
// (long churn, a hostile peer), it is bounded by one pass over the table.
func (s *Segment) find(name string) (int, uint32) {
	n := s.hdr.capacity
	for k, h := 0, home(name, n); k < n; k++ {
		i := (h + k) % n
		e := entry(s.mem, i)
		switch st := loadState(e); st {
		case stateFree:
			return -1, 0
		case stateGone:
		default:
			if nameEq(e[eName:], name) {
				return i, st
			}
		}
	}
	return -1, 0
}

// home is the first directory entry of name's probe sequence: FNV-1a of
// the name modulo the capacity.
func home(name string, capacity int) int {
	return int(fnv1a(name) % uint64(capacity))
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
		if st == stateFree || st == stateGone {
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
