package barrier

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Barrier (SizeOf(parties, handles) bytes, little-endian,
// Align-aligned):
//
//	offset 0   uint32  state word (see below); the futex word
//	offset 4   uint32  magic "mpbr"
//	offset 8   uint32  layout version
//	offset 12  uint32  parties
//	offset 16  uint32  handles: the number of registration slots
//	offset 20  uint32  reserved, 0
//	offset 24  uint64  rounds released: bits 0..18 the generation of the
//	                   last round counted, bits 19..63 the count (see
//	                   countRound)
//	offset 32  int64   default Wait timeout in nanoseconds (0: none), set by Init
//	offset 40  padding to 64 bytes
//	offset 64  [handles]uint64  slots: a registered process, its registry
//	                            identity (proc.ID.Pack), or 0 for a free slot
const (
	// Align is the alignment a Barrier needs (a cache line).
	Align = 64
	// Version is the layout version of a Barrier.
	// Version 2: owner records name process registry slots, not pids.
	// Version 3: the rounds word names the last round it counted.
	Version = 3
	// MaxParties is the largest number of parties a Barrier supports.
	MaxParties = 1<<countBits - 1
	// MaxHandles is the largest number of registration slots.
	MaxHandles = 4096

	magic      = 0x72627066 // "mpbr"
	offMagic   = 4
	offVersion = 8
	offParties = 12
	offHandles = 16
	offRounds  = 24
	offTimeout = 32
	offSlots   = 64
)

// The state word.
//
//	bit  0       waiters: a waiter may sleep in the kernel; a phase change
//	             (release, end of draining, break, reset) must wake all
//	bit  1       draining: the round was released; its waiters are leaving
//	bit  2       broken: every Wait fails until Reset
//	bits 3..12   count: while filling, the parties that arrived (parties
//	             while the last one runs the action); while draining, the
//	             released waiters that have not left yet
//	bits 13..31  generation: bumped when a round ends (draining done) and by
//	             Reset
//
// Rounds, as in Python's threading.Barrier. A barrier fills (arrivals
// count up) until the last party arrives; that one runs the action, then
// releases the round: the barrier drains, and arrivals for the next round
// wait until every released waiter has left. So no fast participant slips
// into the next round while a slow one still waits in the previous one.
// Each waiter also remembers the generation it arrived in: a Reset bumps
// it, and a waiter that finds the generation moved knows its round was
// reset and returns ErrBrokenBarrier without touching the new round's
// count. (A Reset while the barrier drains does nothing, as in Python: the
// released waiters are on their way out.)
//
// Indices. The last to arrive gets parties-1; each released waiter gets
// the count it decrements while leaving (parties-2 down to 0). The indices
// of a round are thus unique, and a Wait cancelled before the release
// gives nothing back but its arrival.
const (
	waiters    = 1 << iota // a waiter may sleep in the kernel
	draining               // released; waiters are leaving
	broken                 // broken until Reset
	countShift = iota      // count from here
	countBits  = 10
	countMask  = (1<<countBits - 1) << countShift
	genShift   = countShift + countBits // generation from here
)

// outcomeGrace is how long a Wait whose timeout passed or whose context
// ended after the last party arrived waits for the round's outcome (the
// last party's action) before it breaks the round. A variable for tests.
var outcomeGrace = 50 * time.Millisecond

// releaseHook, if set (by tests), runs between a release's swap of the
// state word and its count of the round.
var releaseHook func(*Barrier)

// The rounds word. A release swaps the state word, then counts the round:
// two words, so a party killed between the two would leave a released
// round uncounted, and an observer (waitset.Tripped) waiting for that
// round would wait for the next one, for ever if it was the last. So the
// word also names the generation of the last round it counted: a release
// and the last party to leave the round both count it (countRound), of
// which only the first counts; and while the round drains, Rounds counts
// it from the state word before anyone did. A Barrier of one party has no
// drain and no other party to count for it: its party killed between the
// swap and the count leaves that round uncounted for good (Rounds one
// short), and an observer waiting for it sees the next round instead.
const (
	lastGenBits = 32 - genShift // the generation's width
	lastGenMask = 1<<lastGenBits - 1
)

// countRound counts the round of generation g released, unless the rounds
// word counted it (or a later round) already. It reports whether it did.
func (b *Barrier) countRound(g uint32) bool {
	for {
		r := atomic.LoadUint64(b.rounds)
		if !newer(g, uint32(r)&lastGenMask) {
			return false
		}
		if atomic.CompareAndSwapUint64(b.rounds, r, (r>>lastGenBits+1)<<lastGenBits|uint64(g)) {
			return true
		}
	}
}

// newer reports whether generation g comes after generation last, both of
// lastGenBits bits, which wrap.
func newer(g, last uint32) bool {
	d := (g - last) & lastGenMask
	return d != 0 && d < 1<<(lastGenBits-1)
}

// DefaultCheckInterval is how often a sleeping waiter checks whether every
// registered process is alive, when Options.CheckInterval is zero.
const DefaultCheckInterval = 100 * time.Millisecond

// Errors.
var (
	// ErrBrokenBarrier is returned by Wait when the barrier is broken or
	// breaks while waiting: Abort, a Reset of the round, a Wait that timed
	// out, a failed action, or a registered process that died.
	ErrBrokenBarrier = errors.New("barrier: broken")
	// ErrTimedOut is returned by the Wait whose timeout broke the barrier.
	// errors.Is(ErrTimedOut, ErrBrokenBarrier) holds.
	ErrTimedOut = fmt.Errorf("barrier: wait timed out: %w", ErrBrokenBarrier)
	// ErrActionPanicked is returned, wrapped with the panic value, by the
	// Wait whose action panicked.
	ErrActionPanicked = errors.New("barrier: action panicked")
	// ErrInvalidParties is returned by Init and Create for parties outside
	// 1..MaxParties, or Options.Handles outside 0..MaxHandles.
	ErrInvalidParties = errors.New("barrier: parties or handles out of range")
	// ErrTooManyHandles is returned by Attach, Open, Init and Create when
	// every registration slot is taken.
	ErrTooManyHandles = errors.New("barrier: too many open handles")
)

// Options configure a Barrier handle. The zero value (or nil) means the
// defaults.
type Options struct {
	// Action, if not nil, is run by the last party to arrive at each
	// round, before the others are released, when that party waits
	// through this handle. Each process (each handle) brings its own
	// action, as in Python, where every process's Barrier object holds
	// its own action callable. An action that returns an error or panics
	// breaks the barrier.
	Action func() error
	// Timeout is the default timeout of Wait, as Python's Barrier
	// timeout argument. It belongs to the barrier, as in Python: Init and
	// Create store it in the shared object, and every handle (in any
	// process) that gives none uses it. A handle that gives one overrides
	// it for itself. Default 0: none.
	Timeout time.Duration
	// CheckInterval is how often the process's liveness checker checks,
	// while a waiter sleeps, whether every registered process is alive.
	// Default 100 ms.
	CheckInterval time.Duration
	// Observe makes a handle that does not register its process: for
	// inspection (State, NWaiting, Broken) and for processes that only
	// Abort or Reset. Such a handle never fails with ErrTooManyHandles,
	// and its process's death breaks nothing. A Wait through it works,
	// but then that process is a party nobody watches.
	Observe bool
	// Handles is, for Init and Create, the number of registration slots:
	// how many handles may be open at once, over all processes. Default
	// max(2*parties, 8). Ignored by Attach and Open.
	Handles int
	// Registry names the registered processes, so that a dead party can be
	// told from a live one. Create and Open use the segment's when nil.
	// For Init and Attach, nil means no registry: a party's death then
	// never breaks the barrier (waits time out instead), and its slot is
	// never reclaimed (see shm.Registry).
	Registry *shm.Registry
}

// Barrier is a barrier for a fixed number of parties, shared between
// processes: Python's multiprocessing.Barrier. Obtain one with Create or
// Open (in a segment) or Init or Attach (in memory you own); the zero
// Barrier is not usable. Close a handle when the process stops taking
// part (see the package documentation).
//
// Everything a party did before its Wait synchronizes before every other
// party's Wait of the same round returns, in any process mapping the
// memory. A Barrier handle must not be copied after first use; it is safe
// for concurrent use by many goroutines.
type Barrier struct {
	_       noCopy
	w       *uint32
	rounds  *uint64
	slots   []uint64
	parties uint32
	slot    atomic.Int32 // this handle's slot, or -1 once closed
	self    uint64
	reg     *proc.Registry
	action  func() error
	timeout time.Duration // this handle's default timeout; 0: the barrier's
	shared  *int64        // the barrier's default timeout, in nanoseconds
	check   time.Duration
	ctr     stats.Counters // this handle's slow-path events
	// sleepCheck is what the process's liveness checker runs once per
	// interval while a waiter of this handle sleeps (made once); seen is
	// the state word it saw last, without the count and the waiters
	// mark, touched only there.
	sleepCheck func(first bool)
	seen       uint32
}

type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

func defaultHandles(parties int) int { return max(2*parties, 8) }

// SizeOf returns the number of bytes a Barrier for parties parties with
// handles registration slots occupies (handles 0: the default).
func SizeOf(parties, handles int) int {
	if handles <= 0 {
		handles = defaultHandles(parties)
	}
	return offSlots + (8*handles+Align-1)/Align*Align
}

func word32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

func (o *Options) get() Options {
	if o == nil {
		return Options{}
	}
	return *o
}

// in returns o with seg's registry where o names none.
func (o *Options) in(seg *shm.Segment) *Options {
	return shm.WithRegistry(o, seg, func(c *Options) **shm.Registry { return &c.Registry })
}

// Init initializes a Barrier for parties parties in mem (at least
// SizeOf(parties, opts.Handles) bytes, 8-byte aligned; Align recommended),
// registers the calling process in it, and returns a handle. Nothing else
// may use mem while Init runs.
func Init(mem []byte, parties int, opts *Options) (*Barrier, error) {
	o := opts.get()
	if parties < 1 || parties > MaxParties || o.Handles < 0 || o.Handles > MaxHandles {
		return nil, ErrInvalidParties
	}
	handles := o.Handles
	if handles == 0 {
		handles = min(defaultHandles(parties), MaxHandles)
	}
	if err := checkMem(mem, SizeOf(parties, handles)); err != nil {
		return nil, err
	}
	for i := 0; i < handles; i++ {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[offSlots+8*i])), 0)
	}
	atomic.StoreUint32(word32(mem, 0), 0)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[offRounds])), lastGenMask) // 0 rounds; generation 0 is next
	atomic.StoreInt64((*int64)(unsafe.Pointer(&mem[offTimeout])), int64(max(o.Timeout, 0)))
	atomic.StoreUint32(word32(mem, offParties), uint32(parties))
	atomic.StoreUint32(word32(mem, offHandles), uint32(handles))
	atomic.StoreUint32(word32(mem, offVersion), Version)
	atomic.StoreUint32(word32(mem, offMagic), magic) // publishes the Barrier
	return newHandle(mem, uint32(parties), handles, o)
}

func checkMem(mem []byte, need int) error {
	if len(mem) < need {
		return fmt.Errorf("barrier: memory is %d bytes, need %d: %w", len(mem), need, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("barrier: memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

// Attach returns a handle on a Barrier that Init set up in mem, possibly in
// another process, and registers the calling process in it. It fails with
// shm.ErrCorrupt if mem does not hold a Barrier, and ErrTooManyHandles if
// every slot is taken.
func Attach(mem []byte, opts *Options) (*Barrier, error) {
	if err := checkMem(mem, offSlots); err != nil {
		return nil, err
	}
	if atomic.LoadUint32(word32(mem, offMagic)) != magic ||
		atomic.LoadUint32(word32(mem, offVersion)) != Version {
		return nil, fmt.Errorf("barrier: no barrier in memory: %w", shm.ErrCorrupt)
	}
	parties := atomic.LoadUint32(word32(mem, offParties))
	handles := atomic.LoadUint32(word32(mem, offHandles))
	if parties < 1 || parties > MaxParties || handles < 1 || handles > MaxHandles {
		return nil, fmt.Errorf("barrier: %d parties, %d handles: %w", parties, handles, shm.ErrCorrupt)
	}
	if err := checkMem(mem, SizeOf(int(parties), int(handles))); err != nil {
		return nil, err
	}
	if c := count(atomic.LoadUint32(word32(mem, 0))); c > parties {
		return nil, fmt.Errorf("barrier: count %d above %d parties: %w", c, parties, shm.ErrCorrupt)
	}
	return newHandle(mem, parties, int(handles), opts.get())
}

func newHandle(mem []byte, parties uint32, handles int, o Options) (*Barrier, error) {
	b := &Barrier{
		w:       word32(mem, 0),
		rounds:  (*uint64)(unsafe.Pointer(&mem[offRounds])),
		slots:   unsafe.Slice((*uint64)(unsafe.Pointer(&mem[offSlots])), handles),
		parties: parties,
		reg:     proc.Or(o.Registry),
		action:  o.Action,
		timeout: o.Timeout,
		shared:  (*int64)(unsafe.Pointer(&mem[offTimeout])),
		check:   o.CheckInterval,
	}
	b.self = b.reg.SelfPacked()
	if b.check <= 0 {
		b.check = DefaultCheckInterval
	}
	b.sleepCheck = func(first bool) {
		b.checkParties()
		// A party killed between its change of the word (a release, a
		// break, a reset, the end of a drain) and its wake left the
		// sleepers asleep: wake them if those bits changed since the
		// last look, or on the first, which cannot tell. Arrivals (the
		// count) and sleepers' marks change the word without a wake, and
		// wake nobody here either. (Not counted as this handle's wake:
		// no party released anyone.)
		if w := atomic.LoadUint32(b.w) &^ (countMask | waiters); first || w != b.seen {
			b.seen = w
			futex.WakeAll(b.w)
		}
	}
	b.slot.Store(-1)
	if o.Observe {
		return b, nil
	}
	for range 2 {
		for i := range b.slots {
			if atomic.CompareAndSwapUint64(&b.slots[i], 0, b.self) {
				b.slot.Store(int32(i))
				return b, nil
			}
		}
		// Every slot is taken: free those of dead processes (parties
		// killed while nobody waited leave theirs behind) and try again.
		if !b.reclaimDead() {
			break
		}
	}
	return nil, ErrTooManyHandles
}

func spec(name string, size int) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindBarrier, KindVersion: Version, Size: int64(size)}
}

// Create places a new Barrier for parties parties named name in seg and
// registers the calling process in it. It fails with shm.ErrExist if the
// name is taken.
func Create(seg *shm.Segment, name string, parties int, opts *Options) (*Barrier, error) {
	opts = opts.in(seg)
	o := opts.get()
	if parties < 1 || parties > MaxParties || o.Handles < 0 || o.Handles > MaxHandles {
		return nil, ErrInvalidParties
	}
	var b *Barrier
	mem, err := seg.Alloc(spec(name, SizeOf(parties, o.Handles)), func(mem []byte) (err error) {
		b, err = Init(mem, parties, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("barrier: creating %q: %w", name, err)
	}
	shm.Keep(seg, b, mem)
	stats.Publish(seg.Path(), name, shm.KindBarrier.String(), &b.ctr)
	return b, nil
}

// Open attaches to the Barrier named name in seg and registers the calling
// process in it.
func Open(seg *shm.Segment, name string, opts *Options) (*Barrier, error) {
	mem, err := seg.Lookup(spec(name, 0))
	if err != nil {
		return nil, fmt.Errorf("barrier: opening %q: %w", name, err)
	}
	h, err := Attach(mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindBarrier.String(), &h.ctr)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// OpenOrCreate opens the Barrier named name in seg, creating it for
// parties parties if it does not exist, and registers the calling process
// in it, in one race-free call: of several processes calling it at once
// one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, parties int, opts *Options) (*Barrier, error) {
	return shm.OrOpen(func() (*Barrier, error) { return Create(seg, name, parties, opts) },
		func() (*Barrier, error) { return Open(seg, name, opts) })
}

// Close deregisters this handle: from now on the death of this process no
// longer breaks the barrier through this handle. The handle must not be
// used for Wait afterwards. Close does not free the memory; closing twice
// returns nil.
func (b *Barrier) Close() error {
	if i := b.slot.Swap(-1); i >= 0 {
		atomic.CompareAndSwapUint64(&b.slots[i], b.self, 0)
	}
	return nil
}

func count(w uint32) uint32 { return w & countMask >> countShift }
func gen(w uint32) uint32   { return w >> genShift }

// Wait waits until all parties have called Wait, or ctx is done (nil:
// never), or Options.Timeout passes. It returns this party's index in
// 0..Parties()-1, unique within the round: Parties()-1 for the last to
// arrive (which ran the action). Errors: ErrBrokenBarrier (or ErrTimedOut,
// which is one) if the barrier is or becomes broken; the action's error
// (or ErrActionPanicked) for the party whose action failed; ctx.Err(),
// leaving the barrier as it was (the arrival is withdrawn) — unless the
// last party had already arrived, in which case Wait waits for the round's
// outcome, for at most 50 ms more; if the last party's action takes longer
// than that, Wait breaks the barrier and returns ctx.Err() (the action's
// party then gets ErrBrokenBarrier).
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	var deadline time.Time
	d := b.timeout
	if d <= 0 {
		d = time.Duration(atomic.LoadInt64(b.shared)) // a negative one (corrupt) means none
	}
	if d > 0 {
		deadline = futex.After(d)
	}
	return b.wait(ctx, deadline)
}

// WaitTimeout is Wait with a timeout: if the round is not released within
// d, it breaks the barrier (for every party) and returns ErrTimedOut. A d
// of zero or less does not wait at all: it succeeds only for the last
// party to arrive.
func (b *Barrier) WaitTimeout(d time.Duration) (int, error) {
	return b.wait(context.Background(), futex.After(max(d, 0)))
}

func (b *Barrier) wait(ctx context.Context, deadline time.Time) (int, error) {
	var (
		g        uint32 // generation of the round we arrived in
		graceErr error  // set while waiting out outcomeGrace: what to return after it
		arrived  bool
		spins    int // iterations spent waiting without sleeping
		slept    bool
		spun     bool      // the spin ran out; the next sleep counts it
		watched  bool      // registered with the process's liveness checker
		check    time.Time // the end of the first check interval asleep
	)
	// A waiter asleep for a whole check interval checks the parties
	// itself once, then leaves the parties' liveness and the wakes a
	// killed party never sent to the process's checker (sleepCheck, once
	// per interval for all of this handle's sleepers): a death it finds
	// breaks the round, which wakes them. So a long wait wakes only when
	// the word changes or at its own deadline, not every interval; a
	// short one does not take the checker's mutex.
	defer func() {
		if watched {
			robust.UnwatchFunc(b)
		}
	}()
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		// No time to wait: no spinning either; the first futex.Wait
		// reports the timeout.
		slept = true
	}
	for {
		w := atomic.LoadUint32(b.w)
		if !arrived {
			if w&broken != 0 {
				return -1, ErrBrokenBarrier
			}
			if w&draining == 0 && count(w) < b.parties {
				nw := w + 1<<countShift
				if !atomic.CompareAndSwapUint32(b.w, w, nw) {
					continue
				}
				if count(nw) == b.parties {
					return b.release(gen(w))
				}
				arrived, g = true, gen(w)
				continue
			}
			// Draining, or the last party is running the action: wait
			// for the next round to open.
		} else {
			if gen(w) != g {
				return -1, ErrBrokenBarrier
			}
			// A released round is complete even if the barrier broke
			// while it drains: its parties leave with their indices.
			if w&draining != 0 {
				idx, err, ok := b.leave(w)
				if !ok {
					continue
				}
				if !slept && spins > 0 {
					futex.SpinDone(true)
				}
				return idx, err
			}
			if w&broken != 0 {
				return -1, ErrBrokenBarrier
			}
			// Filling: wait for the release.
		}

		// Wait for the word to change: spin, then sleep.
		if !slept {
			if futex.Spin(spins) {
				spins++
				continue
			}
			futex.SpinDone(false)
			slept, spun = true, true
		}
		if !watched && check.IsZero() {
			check = futex.After(b.check)
		}
		if w&waiters == 0 {
			if !atomic.CompareAndSwapUint32(b.w, w, w|waiters) {
				continue
			}
			w |= waiters
		}
		wake := deadline
		if !watched && (wake.IsZero() || check.Before(wake)) {
			wake = check
		}
		b.ctr.Sleep(&spun)
		err := futex.Wait(ctx, b.w, w, wake)
		switch {
		case err == nil:
			continue
		case err == futex.ErrTimeout:
			now := time.Now()
			if !watched && !now.Before(check) {
				b.checkParties()
				robust.WatchFunc(b, b.sleepCheck, b.check)
				watched = true
			}
			if !deadline.IsZero() && !now.Before(deadline) {
				if graceErr != nil {
					// The outcome did not come within outcomeGrace: the
					// action runs long, or a peer forged "last party
					// arrived". Break the round rather than wait on.
					b.breakIf(func(w uint32) bool { return gen(w) == g && w&draining == 0 })
					b.ctr.Timeout()
					return -1, graceErr
				}
				if b.timedOut(arrived, g) {
					b.ctr.Timeout()
					return -1, ErrTimedOut
				}
				// The last party arrived: the outcome is near.
				deadline, graceErr = now.Add(outcomeGrace), ErrTimedOut
				continue
			}
		case ctx != nil && err == ctx.Err():
			if !arrived {
				return -1, err
			}
			switch ok, cerr := b.withdraw(g); {
			case ok:
				return -1, err
			case cerr != nil:
				return -1, cerr
			}
			// Released, broken, or the last party arrived: no longer
			// ours to withdraw; wait for the outcome without ctx, for
			// at most outcomeGrace.
			ctx, deadline, graceErr = nil, time.Now().Add(outcomeGrace), err
		default:
			// The futex system call failed (it cannot on valid
			// memory): do not leave the others waiting for us.
			if arrived {
				if ok, _ := b.withdraw(g); !ok {
					b.breakIf(func(w uint32) bool { return gen(w) == g })
				}
			}
			return -1, err
		}
	}
}

// release is run by the last party to arrive in generation g, with the
// count at parties: it runs the action and releases the round.
func (b *Barrier) release(g uint32) (int, error) {
	if b.action != nil {
		if err := b.runAction(); err != nil {
			b.breakIf(func(w uint32) bool { return gen(w) == g })
			return -1, err
		}
	}
	for {
		w := atomic.LoadUint32(b.w)
		if gen(w) != g || w&broken != 0 {
			return -1, ErrBrokenBarrier // reset or broken during the action
		}
		var nw uint32
		if b.parties == 1 {
			nw = w&^(countMask|waiters) + 1<<genShift
		} else {
			nw = w&^(countMask|waiters) | (b.parties-1)<<countShift | draining
		}
		if atomic.CompareAndSwapUint32(b.w, w, nw) {
			if releaseHook != nil {
				releaseHook(b)
			}
			b.countRound(g)
			// An observer (Arm) that marked a sleeper after the swap
			// above read the round count before it moved: wake it too.
			// A wake must follow a change of the word (the futex
			// contract: a sleeper that had not yet entered the kernel
			// would sleep on through a wake that left its value), so
			// its mark is cleared first.
			woke := w&waiters != 0
			for {
				cur := atomic.LoadUint32(b.w)
				if cur&waiters == 0 {
					break
				}
				if atomic.CompareAndSwapUint32(b.w, cur, cur&^waiters) {
					woke = true
					break
				}
			}
			if woke {
				b.wakeAll()
			}
			return int(b.parties) - 1, nil
		}
	}
}

func (b *Barrier) runAction() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrActionPanicked, r)
		}
	}()
	return b.action()
}

// leave takes a released waiter out of a draining barrier; the last one
// out opens the next round. ok is false if the CAS lost a race.
func (b *Barrier) leave(w uint32) (idx int, err error, ok bool) {
	c := count(w)
	if c == 0 || c >= b.parties {
		// A round releases parties-1 waiters: any other count was not
		// written by a Barrier, and the index it would give is out of
		// 0..parties-1.
		return -1, fmt.Errorf("barrier: draining with count %d, %d parties: %w", c, b.parties, shm.ErrCorrupt), true
	}
	nw := w - 1<<countShift
	if c == 1 {
		nw = nw&^(draining|waiters) + 1<<genShift
	}
	if !atomic.CompareAndSwapUint32(b.w, w, nw) {
		return 0, nil, false
	}
	if c == 1 {
		// The releaser counts the round right after its swap; if it has
		// not, it may have died there, before its wake too: wake the
		// observers (whose marks its swap cleared) ourselves.
		if b.countRound(gen(w)) || w&waiters != 0 {
			b.wakeAll()
		}
	}
	return int(c) - 1, nil, true
}

// timedOut handles a Wait whose deadline passed. It reports whether the
// Wait fails with ErrTimedOut: true after it broke the barrier; false if
// the last party of our round has arrived (the caller waits for the
// outcome) or the round ended otherwise (the caller re-reads the word).
func (b *Barrier) timedOut(arrived bool, g uint32) bool {
	for {
		w := atomic.LoadUint32(b.w)
		if arrived && (gen(w) != g || w&(broken|draining) != 0 || count(w) == b.parties) {
			return false
		}
		if !arrived && w&broken != 0 {
			return true
		}
		nw := w&^waiters | broken // a draining round still drains
		if atomic.CompareAndSwapUint32(b.w, w, nw) {
			if w&waiters != 0 {
				b.wakeAll()
			}
			return true
		}
	}
}

// withdraw takes back an arrival in generation g that was not released.
// It reports false if that is no longer possible. A count of zero while
// filling generation g, which our own arrival rules out, was written by a
// peer: then there is no outcome to wait for, and withdraw returns
// shm.ErrCorrupt.
func (b *Barrier) withdraw(g uint32) (bool, error) {
	for {
		w := atomic.LoadUint32(b.w)
		if gen(w) != g || w&(broken|draining) != 0 || count(w) == b.parties {
			return false, nil
		}
		if count(w) == 0 {
			return false, fmt.Errorf("barrier: count 0 in the round this party arrived in: %w", shm.ErrCorrupt)
		}
		if atomic.CompareAndSwapUint32(b.w, w, w-1<<countShift) {
			return true, nil
		}
	}
}

// breakIf breaks the barrier if cond holds for the state word and it is
// not broken yet, and wakes every sleeper.
func (b *Barrier) breakIf(cond func(w uint32) bool) {
	for {
		w := atomic.LoadUint32(b.w)
		if w&broken != 0 || !cond(w) {
			return
		}
		// A draining round keeps draining: its released parties leave
		// with their indices; the break holds for every later Wait.
		if atomic.CompareAndSwapUint32(b.w, w, w&^waiters|broken) {
			if w&waiters != 0 {
				b.wakeAll()
			}
			return
		}
	}
}

func always(uint32) bool { return true }

// wakeAll wakes every sleeper on the state word.
func (b *Barrier) wakeAll() {
	b.ctr.Wake()
	futex.WakeAll(b.w)
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps in Wait, wakes made by the party that released a
// round (or broke, reset or drained it), Waits that timed out, and
// registrations of dead processes this handle freed. Only slow paths
// count: the last party to arrive at a barrier nobody sleeps on touches
// no counter.
func (b *Barrier) Stats() stats.Stats { return b.ctr.Load() }

// checkParties breaks the barrier if a registered process is dead, after
// freeing its slot.
func (b *Barrier) checkParties() {
	if b.reclaimDead() {
		b.breakIf(always)
	}
}

// reclaimDead frees the registration slots of dead processes and reports
// whether it freed any. If it did while a round is in progress (arrivals
// counted, or released waiters still leaving), it breaks the barrier: the
// dead process's arrival may be in the count, or it may be a released
// waiter that will never leave, and once its slot is free no sleeping
// waiter could find it dead any more (Open and Reset reclaim too).
func (b *Barrier) reclaimDead() bool {
	dead := false
	for i := range b.slots {
		v := atomic.LoadUint64(&b.slots[i])
		if v == 0 || v == b.self {
			continue
		}
		if !b.reg.Alive(proc.Unpack(v)) && atomic.CompareAndSwapUint64(&b.slots[i], v, 0) {
			b.ctr.OwnerDead()
			dead = true
		}
	}
	if dead {
		b.breakIf(func(w uint32) bool { return count(w) != 0 || w&draining != 0 })
	}
	return dead
}

// Abort breaks the barrier: every Wait in progress and every later Wait
// returns ErrBrokenBarrier until Reset. The parties of a round that has
// already tripped are not in progress: if Abort comes while they are
// still leaving, each of them still gets its index.
func (b *Barrier) Abort() { b.breakIf(always) }

// Reset returns the barrier to its initial, empty state. Waits in progress
// return ErrBrokenBarrier. A Reset while the barrier drains a released
// round does nothing (as in Python): the released waiters keep their
// indices and the next round opens when they have left. If the barrier
// broke during that drain (an Abort, or a released party that died and
// will never leave), Reset cuts the drain short: released parties that
// have not left yet get ErrBrokenBarrier. Reset first frees the slots of
// registered processes found dead, which breaks a round in progress (a
// dead waiter never leaves).
func (b *Barrier) Reset() {
	b.reclaimDead() // a reset barrier starts without the dead
	for {
		w := atomic.LoadUint32(b.w)
		if w&draining != 0 && w&broken == 0 {
			return // the released parties are on their way out
		}
		// Broken while draining: a released party may be dead and never
		// leave, so the drain is cut short; released parties that have not
		// left yet get ErrBrokenBarrier.
		nw := w&^(countMask|draining|broken|waiters) + 1<<genShift
		if atomic.CompareAndSwapUint32(b.w, w, nw) {
			// A drain cut short ends a released round, which counts
			// (its releaser may have died before it counted it).
			counted := w&draining != 0 && b.countRound(gen(w))
			if w&waiters != 0 || counted {
				b.wakeAll()
			}
			return
		}
	}
}

// Parties returns the number of parties needed to pass the barrier.
func (b *Barrier) Parties() int { return int(b.parties) }

// NWaiting returns the number of parties waiting in the current round (0
// while the barrier drains or is broken).
func (b *Barrier) NWaiting() int {
	w := atomic.LoadUint32(b.w)
	if w&(draining|broken) != 0 {
		return 0
	}
	return int(count(w))
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool { return atomic.LoadUint32(b.w)&broken != 0 }

// State is a snapshot of a Barrier, for inspection.
type State struct {
	Parties    int
	Waiting    int    // arrived in the current round (filling), or not yet left (draining)
	Draining   bool   // the round was released; its waiters are leaving
	Broken     bool   // every Wait fails until Reset
	Waiters    bool   // a waiter may sleep in the kernel
	Generation uint32 // bumped by each round's end and each Reset, modulo 2^19
	Rounds     uint64 // rounds released since Init
	Handles    int    // registration slots
	Registered []Registered
}

// Registered is a process registered in a Barrier's slot.
type Registered struct {
	Slot  int  // its slot in the process registry
	Pid   int  // its pid, as it saw itself (display only; 0: unknown)
	Alive bool // whether the registry says it lives
}

// State returns a snapshot of the barrier. It asks the process registry
// whether each registered process is alive.
func (b *Barrier) State() State {
	w := atomic.LoadUint32(b.w)
	st := State{
		Parties: int(b.parties), Waiting: int(count(w)),
		Draining: w&draining != 0, Broken: w&broken != 0, Waiters: w&waiters != 0,
		Generation: gen(w), Rounds: b.Rounds(), Handles: len(b.slots),
	}
	for i := range b.slots {
		if v := atomic.LoadUint64(&b.slots[i]); v != 0 {
			id := proc.Unpack(v)
			st.Registered = append(st.Registered, Registered{Slot: int(id.Slot), Pid: b.reg.Pid(id), Alive: b.reg.Alive(id)})
		}
	}
	return st
}
