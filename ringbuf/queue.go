package ringbuf

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/release"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Queue (SizeOf(capacity, maxMsg) bytes, little-endian,
// 64-byte aligned recommended, 8-byte aligned required). Every group of
// words written by a different party owns its cache line.
//
//	offset 0    uint32  magic "mpq1"; stored last by Init, it publishes the queue
//	offset 4    uint32  layout version (QueueVersion)
//	offset 8    uint32  ring size C: the limit L rounded up to a power of
//	                    two, at least 2 (qRing)
//	offset 12   uint32  maximum message size M, 0..MaxMsgLimit
//	offset 16   uint32  slot stride: 64 + M rounded up to 64
//	offset 20   uint32  flags: bit 0 joinable, bit 1 typed, bit 2 simple
//	offset 24   uint64  element type fingerprint (typed queues), else 0
//	offset 32   uint32  shutdown: 0 open, 1 shut down, 2 shut down
//	                    immediately (Shutdown); back to 0 by Restart
//	offset 36   uint32  limit L: the capacity the user asked for,
//	                    1..MaxCapacity; at most L messages are committed
//	                    or being written at once (see underLimit)
//	offset 64   uint64  tail: producers' position hint
//	offset 128  uint64  head: consumers' position hint
//	offset 192  uint32  not-empty epoch (futex word); uint32 getters asleep in it
//	offset 256  uint32  not-full epoch (futex word);  uint32 putters asleep in it
//	offset 320  uint32  joinable: join epoch, a futex word: bumped by a
//	                    TaskDone that brings a count of taken tasks to zero
//	                    while someone joins
//	offset 324  uint32  joinable: taken-but-not-done tasks of no taker
//	                    entry (the table was full of live takers)
//	offset 328  uint32  joinable: sleeping joiners
//	offset 384  C slots of `stride` bytes each:
//	            +0   uint64  slot word: sequence (low half), claim (high half)
//	            +8   uint64  identity of the last producer that claimed it
//	            +16  uint64  identity of the last consumer that claimed it
//	            +24  unused, to the end of the slot's first cache line
//	            +64  M bytes of payload
//	then        joinable queues only: qJoinEntries taker entries of 16 bytes
//	            (see joinable.go):
//	            +0   uint64  taker's claim id (high half), tasks it took
//	                         and has not done (low half)
//	            +8   uint64  taker's full identity (proc.ID.Pack)
//
// The payload starts on the line after the slot word. A waiting consumer
// polls the slot word; with the payload's first bytes on that line, every
// poll while the producer wrote them took the line back from it, and the
// producer's next store took it again. Apart, the producer writes the
// payload undisturbed and the line bounces only at the claim and the
// commit: the W8 ping-pong median went from 0.74 to 0.61 µs. It costs 64
// bytes per slot when M mod 64 is 1..40, nothing otherwise.
//
// # The slot word
//
// The ring is Vyukov's bounded MPMC queue (as rigtorp's MPMCQueue writes
// it: one turn word per slot), with one change for robustness: positions
// are claimed by a compare-and-swap on the slot word itself, which records
// who claimed it, instead of on the shared head or tail counter. Head and
// tail are only hints, stored (never compared-and-swapped) by each
// claimant after its claim; see "The hints" below. For position p and slot
// p mod C, the sequence half is (all 32-bit, compared by signed
// difference, so it wraps freely):
//
//	seq == p,   claim 0                   free: a producer may claim p
//	seq == p,   claim producer id         a producer is writing p
//	seq == p+1, claim full|len            full: holds a message of len bytes
//	seq == p+1, claim full|skip           full of nothing: consumers skip it
//	seq == p+1, claim consumer id         a consumer is reading p
//	seq == p+C, claim 0                   free for the next lap
//
// A claim id is the claimant's process registry slot (bits 0..16) and the
// low 14 bits of its slot generation (bits 17..30), bit 31 clear; the
// slot's owner word holds the full identity (proc.ID.Pack) for the
// liveness check, which asks the segment's process registry. A waiter stuck behind a claimed
// slot for longer than the check interval asks whether the claimant is
// alive; if not, it resolves the slot with a compare-and-swap from the
// exact claimed word: a dead producer's slot becomes "full of nothing", a
// dead consumer's slot becomes free for the next lap. A live claimant
// finishes with a compare-and-swap from the same word, so of the
// claimant's commit and the reclaimer's skip exactly one succeeds.
//
// # Cost of an operation
//
// An uncontended Put is two locked instructions: the claim CAS and the
// commit CAS, both on the slot word (Vyukov's ring has one CAS, on the
// tail, and a plain release store to commit). Both must stay CASes on the
// slot word: the claim because it is what records the claimant where a
// reclaimer can find it (a claim on the tail would leave a window, between
// the tail CAS and recording the claimant, in which a killed producer
// leaves a position claimed by nobody known); the commit because a plain
// store could overwrite a reclaimer's "skip" that consumers have already
// passed, resurrecting a slot a lap late. Around them: a plain store of
// the tail hint (one MOV on amd64), a load and, only when another process
// claimed this slot last, a plain store of the owner word, the payload
// copy, and one plain load of the sleeper count (the CAS before it is a
// full barrier). A Get is one locked instruction: it finds the full slot,
// copies the message out, and swaps the exact full word it found straight
// to "free for the next lap" (takeGet: the copy is validated by the swap,
// as a seqlock reader's by its sequence check; a consumer killed while
// copying holds nothing). Borrow, which hands out the slot itself, claims
// and releases it (two), as race builds do for every Get. No syscall,
// clock read or allocation on either path; the spin and the futex start
// only after an attempt found the queue full or empty.
//
// # The hints
//
// tail and head name positions below which every position has been
// claimed by producers (tail) or consumers (head). Only a claimant writes
// them, with a plain store of its position+1 just after its claim CAS
// succeeded. Concurrent claimants may store out of order, and a claimant
// preempted between its claim and its store may write a value many laps
// old, so a hint can move backwards. It is never ahead: a value is stored
// only after the position below it was claimed, and claims happen in
// position order (a claimant claims the first position it finds
// unclaimed, scanning up from a hint, so the position it claims is the
// frontier). So a stale hint is only a cost: the next claimant starts
// below the frontier and scans up, and each slot it meets proves how far
// it may jump (qPutSkipTo, qGetSkipTo): a slot's word names the last lap
// it served, so one read moves the scan to within two laps of the
// frontier, and the scan ends within about 2C slot reads however old the
// hint, well inside the attempt budget (4C + 65536) that bounds every
// scan against garbage.
const (
	// QueueVersion is the layout version of a Queue. Versions 2 and 3
	// keep version 1's words but change how they are used, so processes
	// of different versions cannot share a queue: since 2 the head and
	// tail hints are stored, not compared-and-swapped (they may move
	// back); since 3 the sleeper counts are per epoch, zeroed by the
	// notifier (qEvent). Version 4 moves the payload to the slot's second
	// cache line. Version 5: claims and owner words name process
	// registry slots, not pids; a joinable queue counts no puts and
	// keeps taker entries after its slots (joinable.go); the header holds
	// the user's capacity (the limit) besides the ring size, and the
	// closed word became the shutdown state.
	QueueVersion = 5
	// MaxCapacity is the largest capacity a Queue accepts (its ring has
	// as many slots: it is a power of two).
	MaxCapacity = 1 << 24
	// MaxMsgLimit is the largest maximum message size a Queue accepts.
	MaxMsgLimit = 1<<30 - 1

	qMagic      = 0x3171706d // "mpq1"
	qHeaderSize = 384
	qSlotHeader = 64 // payload offset in a slot: the slot word's line is its own

	qOffMagic       = 0
	qOffVersion     = 4
	qOffCap         = 8
	qOffMaxMsg      = 12
	qOffStride      = 16
	qOffFlags       = 20
	qOffFingerprint = 24
	qOffShutdown    = 32
	qOffLimit       = 36
	qOffTail        = 64
	qOffHead        = 128
	qOffNotEmpty    = 192
	qOffNotFull     = 256
	qOffJoinEpoch   = 320
	qOffJoinLoose   = 324
	qOffJoinWaiters = 328

	qFlagJoinable = 1 << 0
	qFlagTyped    = 1 << 1
	qFlagSimple   = 1 << 2
)

// Claim half of a slot word.
const (
	qClaimSlotMask = 1<<proc.SlotBits - 1 // claimant's registry slot
	qClaimGenShift = proc.SlotBits        // low bits of the claimant's slot generation
	qClaimGenMask  = 1<<(31-proc.SlotBits) - 1
	qClaimFull     = 1 << 31 // the slot holds a message; low bits: its length
	qClaimSkip     = 1 << 30 // with qClaimFull: the slot holds no message
	qClaimLenMask  = qClaimSkip - 1
)

// SizeOf returns the number of bytes a Queue of the given capacity and
// maximum message size occupies: 384 bytes of header plus R slots of 64 +
// maxMsg bytes rounded up to 64, where R is the capacity rounded up to a
// power of two, at least 2 (a capacity of 0 or less means
// DefaultCapacity). For example SizeOf(1024, 64) is 384 + 1024*128 =
// 131,456 bytes, SizeOf(6, 64) is 384 + 8*128 = 1,408 bytes, and
// SizeOf(256, 4096) is 384 + 256*4160 = 1,065,344 bytes. It returns -1
// for parameters Init would reject.
func SizeOf(capacity, maxMsg int) int {
	capacity = qLimit(capacity)
	if capacity > MaxCapacity || maxMsg < 0 || maxMsg > MaxMsgLimit {
		return -1
	}
	return qHeaderSize + qRing(capacity)*qStride(maxMsg)
}

// DefaultCapacity is the capacity of a queue created with a capacity of 0
// or less, which Python calls unbounded (see the package documentation).
const DefaultCapacity = 1024

// qLimit returns the limit a requested capacity stands for.
func qLimit(capacity int) int {
	if capacity <= 0 {
		return DefaultCapacity
	}
	return capacity
}

// qRing returns the ring size for a limit: the limit rounded up to a power
// of two, at least 2 (Vyukov's ring needs two slots to tell a free slot
// from a full one by its sequence).
func qRing(limit int) int {
	r := 2
	for r < limit {
		r <<= 1
	}
	return r
}

func qStride(maxMsg int) int { return (qSlotHeader + maxMsg + 63) &^ 63 }

// qSize is SizeOf, plus the taker entries for a joinable queue.
func qSize(capacity, maxMsg int, flags uint32) int {
	n := SizeOf(capacity, maxMsg)
	if n >= 0 && flags&qFlagJoinable != 0 {
		n += qJoinEntries * qTakerSize
	}
	return n
}

// Options configure a Queue handle. The zero value (or nil) means the
// defaults.
type Options struct {
	// CheckInterval is how long a waiter stays blocked behind a slot
	// claimed by another process before it checks whether that process is
	// alive, and how often a sleeper re-checks. Default 100 ms: a queue
	// recovers from a killed producer or consumer within about this long.
	CheckInterval time.Duration
	// Registry names the producers' and consumers' processes in slot
	// claims, so that a dead claimant can be told from a live one. Create
	// and Open use the segment's when nil. For Init and Attach, nil means
	// no registry: a slot claimed by a process that died is then never
	// reclaimed, and the queue stalls at it (see shm.Registry).
	Registry *shm.Registry
}

func (o *Options) registry() *shm.Registry {
	if o == nil {
		return nil
	}
	return o.Registry
}

// in returns o with seg's registry where o names none.
func (o *Options) in(seg *shm.Segment) *Options {
	return shm.WithRegistry(o, seg, func(c *Options) **shm.Registry { return &c.Registry })
}

const qDefaultCheck = 100 * time.Millisecond

func (o *Options) check() time.Duration {
	if o == nil || o.CheckInterval <= 0 {
		return qDefaultCheck
	}
	return o.CheckInterval
}

// qEvent is an event count, one 64-bit word: an epoch (the low half, the
// futex word) and the number of sleepers registered in that epoch (the
// high half).
//
// A sleeper registers with one atomic add to the high half, which also
// tells it the epoch; then it looks at the queue once more, and sleeps on
// the epoch. A notifier that finds sleepers (a plain load after its
// publishing CAS) starts a new epoch with none, by one compare-and-swap,
// and wakes them all: every registration made so far is consumed by that
// one notification, so the notifiers after it make no syscall until
// someone registers again, even while the woken sleepers are still on
// their way out of the kernel. A sleeper that leaves (woken, timed out,
// cancelled) takes its registration back only if its epoch is still
// current; otherwise a notification already consumed it. A sleeper killed
// while registered so costs the next notification one wake, nothing
// more, and a garbage count heals at the next notification.
type qEvent struct {
	seq     uint32 // futex word: the epoch, bumped by each notification that finds sleepers, and by Close and Shutdown
	waiters uint32 // sleepers registered in this epoch: added by sleepers, zeroed by notifiers
}

func (e *qEvent) word() *uint64 { return (*uint64)(unsafe.Pointer(e)) }

// sleepers returns the sleepers registered in the current epoch.
func (e *qEvent) sleepers() uint32 { return uint32(atomic.LoadUint64(e.word()) >> 32) }

// register announces a sleeper and returns the epoch it sleeps in.
func (e *qEvent) register() uint32 {
	return uint32(atomic.AddUint64(e.word(), 1<<32)) // announces a sleeper to notifiers
}

// leave takes back a registration made in epoch, unless a notification
// already consumed it.
func (e *qEvent) leave(epoch uint32) {
	// Bounded against a peer that rewrites the word without end: a
	// registration left behind costs the next notification one wake.
	for range qEventTries {
		w := atomic.LoadUint64(e.word())
		if uint32(w) != epoch || w>>32 == 0 {
			return
		}
		if atomic.CompareAndSwapUint64(e.word(), w, w-1<<32) {
			return
		}
	}
}

// Queue is a bounded multi-producer multi-consumer queue of byte messages
// shared between processes: Python's multiprocessing.Queue without the
// pickling. Obtain one with Create or Open (in a segment) or Init or Attach
// (in memory you own); the zero Queue is not usable.
//
// Messages from one goroutine are received in the order it put them. A Put
// synchronizes before the Get that returns its message, in any process
// mapping the memory. A Queue handle must not be copied after first use;
// it is safe for concurrent use by many goroutines.
type Queue struct {
	_        qNoCopy
	mem      []byte
	slots    unsafe.Pointer // first slot
	mask     uint64         // capacity-1
	capacity uint32
	maxMsg   int
	stride   uintptr
	joinable bool
	check    time.Duration
	budget   int // attempts one try makes before it reports corruption

	reg        *proc.Registry // names claimants
	selfClaim  uint32         // this process's claim id
	selfPacked uint64         // this process's full identity, for owner words

	limit uint32 // the capacity the user asked for: at most this many messages at once

	// Header words. The cached parameters above are read once at Attach:
	// a peer that scribbles on the header later cannot make this handle
	// index outside mem.
	tail         *uint64       // positions below it were claimed by producers; stored by producers after a claim (a hint: may lag, even move back)
	head         *uint64       // positions below it were claimed by consumers; stored by consumers after a claim (a hint: may lag, even move back)
	shutdown     *uint32       // 0 open, 1 shut down, 2 shut down immediately; written by Shutdown and Restart
	handleClosed atomic.Bool   // this handle is closed (Close): process-local
	notEmpty     *qEvent       // getters sleep here; bumped by Put and Close
	notFull      *qEvent       // putters sleep here; bumped by Get and Close
	joinEpoch    *uint32       // joinable: bumped when a taken count reaches zero while someone joins
	joinLoose    *uint32       // joinable: taken-not-done tasks of no taker entry
	joinWaiters  *uint32       // joinable: sleeping joiners
	joinTab      []qTaker      // joinable: the taker entries
	joinIdx      atomic.Int32  // joinable: this process's taker entry; -1 unknown yet, -2 none free
	joinMiss     atomic.Uint32 // joinable: takes counted loose since the last look for a free entry

	ctr stats.Counters // this handle's slow-path events
	// lostWake is the check the process's liveness checker runs while a
	// getter of this handle sleeps on an empty queue (see qWaiter.pause);
	// made once.
	lostWake func(bool)
}

type qNoCopy struct{}

func (*qNoCopy) Lock()   {}
func (*qNoCopy) Unlock() {}

// qClaimOf returns the claim id of a registry identity.
func qClaimOf(id proc.ID) uint32 {
	return id.Slot&qClaimSlotMask | (id.Gen&qClaimGenMask)<<qClaimGenShift
}

func qWord(seq, claim uint32) uint64 { return uint64(claim)<<32 | uint64(seq) }

func u32at(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
func u64at(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

func qCheckMem(mem []byte, need int) error {
	if len(mem) < need {
		return fmt.Errorf("ringbuf: memory is %d bytes, queue needs %d: %w", len(mem), need, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return fmt.Errorf("ringbuf: queue memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

// Init initializes an empty Queue of the given capacity (1..MaxCapacity;
// 0 or less means DefaultCapacity) and maximum message size
// (0..MaxMsgLimit) in mem, which
// must hold SizeOf(capacity, maxMsg) bytes and be 8-byte aligned (64
// recommended), and returns a handle on it. Nothing else may use mem while
// Init runs.
func Init(mem []byte, capacity, maxMsg int, opts *Options) (*Queue, error) {
	return qInit(mem, capacity, maxMsg, 0, 0, opts)
}

func qInit(mem []byte, capacity, maxMsg int, flags uint32, fp uint64, opts *Options) (*Queue, error) {
	size := qSize(capacity, maxMsg, flags)
	if size < 0 {
		return nil, fmt.Errorf("ringbuf: capacity %d (want at most %d) or max message size %d (want 0..%d): %w",
			capacity, MaxCapacity, maxMsg, MaxMsgLimit, ErrInvalidParam)
	}
	if err := qCheckMem(mem, size); err != nil {
		return nil, err
	}
	limit := qLimit(capacity)
	capacity = qRing(limit)
	clear(mem[:qHeaderSize])
	*u32at(mem, qOffVersion) = QueueVersion
	*u32at(mem, qOffCap) = uint32(capacity)
	*u32at(mem, qOffLimit) = uint32(limit)
	*u32at(mem, qOffMaxMsg) = uint32(maxMsg)
	*u32at(mem, qOffStride) = uint32(qStride(maxMsg))
	*u32at(mem, qOffFlags) = flags
	*u64at(mem, qOffFingerprint) = fp
	stride := qStride(maxMsg)
	for i := 0; i < capacity; i++ {
		off := qHeaderSize + i*stride
		clear(mem[off : off+qSlotHeader])
		*u64at(mem, off) = qWord(uint32(i), 0) // free for position i
	}
	clear(mem[qHeaderSize+capacity*stride : size]) // the taker entries of a joinable queue
	// Publishes the initialized queue to Attach in any process.
	atomic.StoreUint32(u32at(mem, qOffMagic), qMagic)
	return qHandle(mem, opts)
}

// Attach returns a handle on a Queue that Init set up in mem, possibly in
// another process. It fails with shm.ErrCorrupt (wrapped) if mem does not
// hold a valid queue.
func Attach(mem []byte, opts *Options) (*Queue, error) {
	if err := qCheckMem(mem, qHeaderSize); err != nil {
		return nil, err
	}
	if atomic.LoadUint32(u32at(mem, qOffMagic)) != qMagic {
		return nil, fmt.Errorf("ringbuf: no queue in memory (bad magic): %w", shm.ErrCorrupt)
	}
	if v := atomic.LoadUint32(u32at(mem, qOffVersion)); v != QueueVersion {
		return nil, fmt.Errorf("ringbuf: queue layout version %d, want %d: %w", v, QueueVersion, shm.ErrCorrupt)
	}
	return qHandle(mem, opts)
}

// qHandle validates the header parameters once and caches them.
func qHandle(mem []byte, opts *Options) (*Queue, error) {
	c := atomic.LoadUint32(u32at(mem, qOffCap))
	m := atomic.LoadUint32(u32at(mem, qOffMaxMsg))
	st := atomic.LoadUint32(u32at(mem, qOffStride))
	flags := atomic.LoadUint32(u32at(mem, qOffFlags))
	limit := atomic.LoadUint32(u32at(mem, qOffLimit))
	size := qSize(int(limit), int(m), flags)
	if size < 0 || limit == 0 || int(c) != qRing(int(limit)) || int(st) != qStride(int(m)) || flags&^(qFlagJoinable|qFlagTyped|qFlagSimple) != 0 {
		return nil, fmt.Errorf("ringbuf: queue header (limit %d, ring %d, max message %d, stride %d, flags %#x): %w", limit, c, m, st, flags, shm.ErrCorrupt)
	}
	if err := qCheckMem(mem, size); err != nil {
		return nil, err
	}
	check := opts.check()
	reg := proc.Or(opts.registry())
	q := &Queue{
		reg:         reg,
		selfClaim:   qClaimOf(reg.Self()),
		selfPacked:  reg.SelfPacked(),
		mem:         mem[:size:size],
		slots:       unsafe.Pointer(&mem[qHeaderSize]),
		mask:        uint64(c - 1),
		capacity:    c,
		limit:       limit,
		maxMsg:      int(m),
		stride:      uintptr(st),
		joinable:    flags&qFlagJoinable != 0,
		check:       check,
		budget:      4*int(c) + 1<<16,
		tail:        u64at(mem, qOffTail),
		head:        u64at(mem, qOffHead),
		shutdown:    u32at(mem, qOffShutdown),
		notEmpty:    (*qEvent)(unsafe.Pointer(&mem[qOffNotEmpty])),
		notFull:     (*qEvent)(unsafe.Pointer(&mem[qOffNotFull])),
		joinEpoch:   u32at(mem, qOffJoinEpoch),
		joinLoose:   u32at(mem, qOffJoinLoose),
		joinWaiters: u32at(mem, qOffJoinWaiters),
	}
	q.joinIdx.Store(-1)
	q.lostWake = func(bool) {
		// A producer killed between its commit and its wake left a
		// message behind sleeping getters: wake them.
		if q.notEmpty.sleepers() != 0 && !q.Empty() {
			q.wake(q.notEmpty)
		}
	}
	if q.joinable {
		tab := qHeaderSize + int(c)*int(st)
		q.joinTab = unsafe.Slice((*qTaker)(unsafe.Pointer(&mem[tab])), qJoinEntries)
	}
	return q, nil
}

func qSpec(name string, kind shm.Kind, fp uint64, size int) shm.Spec {
	return shm.Spec{Name: name, Kind: kind, KindVersion: QueueVersion, Fingerprint: fp, Size: int64(size)}
}

// Create places a new, empty Queue named name in seg (kind shm.KindQueue).
// It fails with shm.ErrExist if the name is taken.
func Create(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*Queue, error) {
	return qCreate(seg, name, shm.KindQueue, capacity, maxMsg, 0, 0, opts)
}

func qCreate(seg *shm.Segment, name string, kind shm.Kind, capacity, maxMsg int, flags uint32, fp uint64, opts *Options) (*Queue, error) {
	size := qSize(capacity, maxMsg, flags)
	if size < 0 {
		return nil, fmt.Errorf("ringbuf: creating %q: capacity %d or max message size %d: %w", name, capacity, maxMsg, ErrInvalidParam)
	}
	var q *Queue
	mem, err := seg.Alloc(qSpec(name, kind, fp, size), func(mem []byte) (err error) {
		q, err = qInit(mem, capacity, maxMsg, flags, fp, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ringbuf: creating %q: %w", name, err)
	}
	shm.Keep(seg, q, mem)
	stats.Publish(seg.Path(), name, kind.String(), &q.ctr)
	return q, nil
}

// Open attaches to the Queue named name in seg.
func Open(seg *shm.Segment, name string, opts *Options) (*Queue, error) {
	return qOpen(seg, name, shm.KindQueue, 0, opts)
}

// OpenOrCreate opens the Queue (capacity and maxMsg are used only if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreate(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*Queue, error) {
	return shm.OrOpen(func() (*Queue, error) { return Create(seg, name, capacity, maxMsg, opts) },
		func() (*Queue, error) { return Open(seg, name, opts) })
}

func qOpen(seg *shm.Segment, name string, kind shm.Kind, fp uint64, opts *Options) (*Queue, error) {
	mem, err := seg.Lookup(qSpec(name, kind, fp, 0))
	if err != nil {
		return nil, fmt.Errorf("ringbuf: opening %q: %w", name, err)
	}
	q, err := Attach(mem, opts.in(seg))
	if err != nil {
		seg.Release(mem)
		return nil, fmt.Errorf("ringbuf: opening %q: %w", name, err)
	}
	shm.Keep(seg, q, mem)
	stats.Publish(seg.Path(), name, kind.String(), &q.ctr)
	return q, nil
}

// slot returns the slot of position p.
func (q *Queue) slot(p uint64) unsafe.Pointer {
	return unsafe.Add(q.slots, uintptr(p&q.mask)*q.stride)
}

func qSlotWord(s unsafe.Pointer) *uint64  { return (*uint64)(s) }
func qProdOwner(s unsafe.Pointer) *uint64 { return (*uint64)(unsafe.Add(s, 8)) }
func qConsOwner(s unsafe.Pointer) *uint64 { return (*uint64)(unsafe.Add(s, 16)) }

// payload returns the first n bytes of slot s's payload; n <= q.maxMsg.
func (q *Queue) payload(s unsafe.Pointer, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(s, qSlotHeader)), n)
}

// noteOwner records this process as the slot's claimant, for the
// liveness check of a waiter stuck behind it. It stores only when the word
// names another process, so a steady stream between the same processes
// writes nothing; when it does store, the store need not be ordered with
// anything (a reclaimer that reads an older owner falls back to the slot
// and generation bits of the claim itself), so it is the cheap hint store.
func (q *Queue) noteOwner(w *uint64) {
	if atomic.LoadUint64(w) != q.selfPacked {
		release.Store64(w, q.selfPacked) // who holds the claim, for the liveness check
	}
}

// Outcomes of one attempt.
type qStatus uint8

const (
	qOK      qStatus = iota
	qWait            // full (put) or empty (get): wait for the other side
	qBlocked         // behind a slot another party claimed: wait, maybe reclaim
	qClosed          // get: shut down and drained
	qShort           // get: the next message does not fit the buffer
	qCorrupt         // shared state no mpipc process could have written
)

// qValidClaim reports whether a claim half is well formed for a slot in
// the given phase (free-phase: seq ≡ p; full-phase: seq ≡ p+1).
func qValidClaim(claim uint32, fullPhase bool) bool {
	if claim&qClaimFull != 0 {
		return fullPhase && (claim&qClaimSkip != 0 && claim&qClaimLenMask == 0 || claim&qClaimSkip == 0)
	}
	return claim == 0 && !fullPhase || claim&qClaimSlotMask != 0
}

// qPutSkipTo returns the position a producer scanning at p may go on at,
// having found p's slot taken (seq, claim; seq in a later lap, or seq == p
// and claimed). Every position below the result has been claimed by a
// producer: a full-phase slot (message, skip, or a consumer reading) holds
// position seq-1; a producer's claim holds position seq; a free slot of a
// later lap had its position seq-C consumed. The result is above p for
// every word the caller passes (it checks the phase first).
func (q *Queue) qPutSkipTo(p uint64, seq, claim uint32) uint64 {
	var next uint32
	switch {
	case (seq-uint32(p))&uint32(q.mask) == 1: // full phase
		next = seq
	case claim != 0: // a producer writes position seq
		next = seq + 1
	default: // free for position seq: seq-C was consumed
		next = seq - q.capacity + 1
	}
	if d := int32(next - uint32(p)); d > 0 {
		return p + uint64(d)
	}
	return p + 1
}

// qGetSkipTo is qPutSkipTo for a consumer scanning at h: every position
// below the result has been claimed by a consumer. A consumer's claim
// holds position seq-1; a full slot of a later lap had position seq-1-C
// consumed; a free (or being written) slot of a later lap had position
// seq-C consumed.
func (q *Queue) qGetSkipTo(h uint64, seq, claim uint32) uint64 {
	var next uint32
	switch {
	case (seq-uint32(h))&uint32(q.mask) == 0: // free phase (seq ≡ h)
		next = seq - q.capacity + 1
	case claim&qClaimFull == 0: // a consumer reads position seq-1
		next = seq
	default: // full for seq-1 > h: seq-1-C was consumed
		next = seq - q.capacity
	}
	if d := int32(next - uint32(h)); d > 0 {
		return h + uint64(d)
	}
	return h + 1
}

// claimPut claims the next free position for a producer. On qOK the slot
// word holds (pos, this process) and the caller must commit or skip it.
// On qWait/qBlocked, blk is the slot word in the way (for stuck detection)
// and at its position.
func (q *Queue) claimPut() (s unsafe.Pointer, pos uint64, st qStatus, blk uint64) {
	p := atomic.LoadUint64(q.tail)
	for n := q.budget; n > 0; n-- {
		s = q.slot(p)
		w := atomic.LoadUint64(qSlotWord(s))
		seq, claim := uint32(w), uint32(w>>32)
		d := int32(seq - uint32(p))
		switch {
		case d == 0 && claim == 0:
			if q.limit != q.capacity && !q.underLimit(p) {
				return s, p, qWait, w
			}
			// Claims position p and records the claimant in the slot word.
			if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(seq, q.selfClaim)) {
				release.Store64(q.tail, p+1) // a hint: may land after a later claimant's
				q.noteOwner(qProdOwner(s))
				return s, p, qOK, 0
			}
			continue // lost the race for p: look again
		case d == -int32(q.capacity) || d == 1-int32(q.capacity):
			// The slot still holds lap p-C: its message is unread (full),
			// or its producer or consumer is still at work (blocked). The
			// scan only passes claimed positions, so p is the frontier.
			if !qValidClaim(claim, d != -int32(q.capacity)) || d == -int32(q.capacity) && claim == 0 {
				return s, p, qCorrupt, w
			}
			if claim == 0 || claim&qClaimFull != 0 {
				return s, p, qWait, w
			}
			return s, p, qBlocked, w
		case d > 0 && uint32(d)&uint32(q.mask) <= 1 || d == 0:
			// Position p is taken (claimed, full, or a later lap): the
			// hint lags; move up as far as the slot proves claimed.
			if !qValidClaim(claim, uint32(d)&uint32(q.mask) == 1) {
				return s, p, qCorrupt, w
			}
			p = q.qPutSkipTo(p, seq, claim)
		default:
			return s, p, qCorrupt, w
		}
	}
	return nil, p, qCorrupt, 0
}

// underLimit reports whether a producer may claim position p of a queue
// whose limit is below its ring size: whether fewer than limit positions
// below p are unclaimed by consumers (committed, being written, or
// skipped and not yet passed). The head hint never exceeds the consumers'
// frontier, so the first test is conservative, and only when it fails is
// the frontier found exactly (a scan from the hint). Each producer tests
// its own position, and positions are claimed one by one by a
// compare-and-swap, so two producers cannot both pass for one free place:
// no shared counter is needed.
func (q *Queue) underLimit(p uint64) bool {
	if int64(p-atomic.LoadUint64(q.head)) < int64(q.limit) {
		return true
	}
	h, _ := q.getFrontier()
	return int64(p-h) < int64(q.limit)
}

// commitPut publishes the n bytes written into claimed slot s as the
// message at pos. It reports false when the slot was reclaimed meanwhile
// (this process was judged dead): the message is not in the queue.
//
// The commit is a compare-and-swap from the exact claimed word, not a
// store: a reclaimer that judged this process dead swaps the same word,
// and exactly one of the two succeeds. The CAS is a full barrier (a
// locked instruction on amd64, sequentially consistent in Go's memory
// model everywhere), so the check for sleepers after it is a plain load:
// a getter registers (an atomic add) before its last look at the slot, so
// either it sees this message or this load sees it.
//
// A joinable queue counts nothing here: a committed message in the ring
// is a task by being there (see joinable.go), so no count can outlive a
// producer killed before its commit.
func (q *Queue) commitPut(s unsafe.Pointer, pos uint64, n int) bool {
	// Publishes the payload and its length: the slot is full for pos.
	if !atomic.CompareAndSwapUint64(qSlotWord(s), qWord(uint32(pos), q.selfClaim), qWord(uint32(pos)+1, qClaimFull|uint32(n))) {
		return false
	}
	if q.notEmpty.sleepers() != 0 {
		q.wake(q.notEmpty)
	}
	return true
}

// skipPut gives up claimed slot s: consumers will skip it.
func (q *Queue) skipPut(s unsafe.Pointer, pos uint64) {
	// Publishes "nothing here" for pos; consumers move past it.
	if atomic.CompareAndSwapUint64(qSlotWord(s), qWord(uint32(pos), q.selfClaim), qWord(uint32(pos)+1, qClaimFull|qClaimSkip)) {
		if q.notEmpty.sleepers() != 0 {
			q.wake(q.notEmpty)
		}
	}
}

// claimGet finds the next message for a consumer. With claimSlot, on qOK the
// slot word holds (pos+1, this process) and n is the message length; the
// caller must release the slot (releaseGet). Without it, on qOK the
// message is only found: blk is its full slot word, which the caller
// copies the message out under and then takes with takeGet. limit < 0
// means any length fits; otherwise a message longer than limit is left in
// place with qShort (n its length).
func (q *Queue) claimGet(limit int, claimSlot bool) (s unsafe.Pointer, pos uint64, n int, st qStatus, blk uint64) {
	h := atomic.LoadUint64(q.head)
	shutSeen := false
	for budget := q.budget; budget > 0; budget-- {
		s = q.slot(h)
		w := atomic.LoadUint64(qSlotWord(s))
		seq, claim := uint32(w), uint32(w>>32)
		d := int32(seq - uint32(h) - 1)
		switch {
		case d == 0 && claim&qClaimFull != 0:
			if !qValidClaim(claim, true) {
				return s, h, 0, qCorrupt, w
			}
			if claim&qClaimSkip != 0 {
				// Frees the skipped slot for the next lap.
				if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(uint32(h)+uint32(q.capacity), 0)) {
					release.Store64(q.head, h+1)
					if q.notFull.sleepers() != 0 {
						q.wake(q.notFull)
					}
					h++
				}
				continue
			}
			n = int(claim & qClaimLenMask)
			if n > q.maxMsg {
				return s, h, 0, qCorrupt, w
			}
			if limit >= 0 && n > limit {
				return s, h, n, qShort, w
			}
			if !claimSlot {
				return s, h, n, qOK, w
			}
			var tw *uint64
			if q.joinable {
				tw = q.takeTask() // counted before the claim: never counted nowhere
			}
			// Claims the message at h and records the claimant.
			if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(seq, q.selfClaim)) {
				release.Store64(q.head, h+1) // a hint: may land after a later claimant's
				q.noteOwner(qConsOwner(s))
				return s, h, n, qOK, 0
			}
			if tw != nil {
				q.untakeTask(tw)
			}
		case d == -1:
			// Nothing at h yet: empty, or a producer is writing it. The
			// scan only passes claimed positions, so h is the frontier.
			if !qValidClaim(claim, false) {
				return s, h, 0, qCorrupt, w
			}
			if claim != 0 {
				return s, h, 0, qBlocked, w
			}
			// Empty. A producer checks shutdown after it claims, so load
			// shutdown first and then look at the slot once more: a
			// message claimed before Shutdown is seen, none can come
			// after.
			if shutSeen {
				return s, h, 0, qClosed, w
			}
			if atomic.LoadUint32(q.shutdown) == 0 {
				return s, h, 0, qWait, w
			}
			shutSeen = true
		case d == -int32(q.capacity) && claim&qClaimFull == 0 && claim != 0:
			// A consumer of lap h-C still reads this slot: h cannot be
			// written until it releases.
			return s, h, 0, qBlocked, w
		case d >= 0 && (uint32(d)+1)&uint32(q.mask) <= 1:
			// Position h is taken by another consumer, or a later lap is
			// here: the hint lags; move up as far as the slot proves
			// consumed.
			if !qValidClaim(claim, uint32(d+1)&uint32(q.mask) == 1) {
				return s, h, 0, qCorrupt, w
			}
			h = q.qGetSkipTo(h, seq, claim)
		default:
			return s, h, 0, qCorrupt, w
		}
	}
	return nil, h, 0, qCorrupt, 0
}

// releaseGet frees the slot of message pos for the next lap. It reports
// false when the slot was reclaimed meanwhile (this process was judged
// dead): the bytes read from it may be torn. Like commitPut, it is a
// compare-and-swap from the claimed word, and the sleeper check after it
// is a plain load.
func (q *Queue) releaseGet(s unsafe.Pointer, pos uint64) bool {
	// Publishes the slot as free for position pos+C: a producer may
	// overwrite the payload from now on.
	if !atomic.CompareAndSwapUint64(qSlotWord(s), qWord(uint32(pos)+1, q.selfClaim), qWord(uint32(pos)+uint32(q.capacity), 0)) {
		return false
	}
	if q.notFull.sleepers() != 0 {
		q.wake(q.notFull)
	}
	return true
}

// takeGet takes the message at pos that claimGet found unclaimed in slot
// s with full word w, after the caller copied it out: a compare-and-swap
// from w straight to "free for pos+C". The copy is optimistic, as a
// seqlock reader's: while the word is w no producer may write the payload
// (it writes only after claiming a free slot), so if the word is still w
// at the CAS, the copy was of the whole, untorn message, and this
// consumer, and no other, took it. If the CAS fails another consumer took
// it first (the copy may be torn: discard it and look again). A Get is so
// one locked instruction, and a consumer killed while copying holds no
// claim: its message stays in the queue for the next consumer.
//
// A joinable queue counts the task against this process's taker entry
// before the CAS, and takes the count back if the CAS fails: at every
// instant the message is in the ring or counted as taken (see joinable.go).
func (q *Queue) takeGet(s unsafe.Pointer, pos uint64, w uint64) bool {
	var tw *uint64
	if q.joinable {
		tw = q.takeTask()
	}
	// Publishes the slot as free for position pos+C, after the copy.
	if !atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(uint32(pos)+uint32(q.capacity), 0)) {
		if tw != nil {
			q.untakeTask(tw)
		}
		return false
	}
	release.Store64(q.head, pos+1) // a hint: may land after a later taker's
	if q.notFull.sleepers() != 0 {
		q.wake(q.notFull)
	}
	return true
}

// finishGet ends a Get that claimGet(limit, !qOptimisticGet) found: it
// takes the message (optimistic) or releases the claim. It reports false
// when another consumer took the message first (optimistic: look again)
// or the claim was reclaimed (this process was judged dead).
func (q *Queue) finishGet(s unsafe.Pointer, pos uint64, w uint64) bool {
	if qOptimisticGet {
		return q.takeGet(s, pos, w)
	}
	return q.releaseGet(s, pos)
}

// wake starts a new epoch of e with no sleepers and wakes every sleeper of
// the old one, if it had any (all: Close and Shutdown, whatever the count
// says).
func (q *Queue) wake(e *qEvent) { q.wakeEpoch(e, false) }

func (q *Queue) wakeEpoch(e *qEvent, all bool) {
	for range qEventTries {
		w := atomic.LoadUint64(e.word())
		if w>>32 == 0 && !all {
			return // another notifier consumed the registrations
		}
		// Publishes a new epoch without sleepers: they are all woken.
		if atomic.CompareAndSwapUint64(e.word(), w, uint64(uint32(w)+1)) {
			q.ctr.Wake()
			qFutexWake(&e.seq, math.MaxInt32)
			return
		}
	}
	// The word never held still (a peer rewrites it): wake whoever sleeps
	// anyway; they re-check the queue and their deadlines.
	q.ctr.Wake()
	qFutexWake(&e.seq, math.MaxInt32)
}

// qEventTries bounds the compare-and-swap loops on an event word.
const qEventTries = 1 << 10

// Cap returns the capacity: how many messages the queue holds at most,
// as given at creation (DefaultCapacity for 0 or less).
func (q *Queue) Cap() int { return int(q.limit) }

// MaxMsgSize returns the largest message the queue accepts.
func (q *Queue) MaxMsgSize() int { return q.maxMsg }

// putFrontier returns the first position producers have not claimed and
// its slot word, scanning up from the tail hint (bounded: on garbage it
// stops where it is).
func (q *Queue) putFrontier() (uint64, uint64) {
	p := atomic.LoadUint64(q.tail)
	for n := q.budget; ; n-- {
		w := atomic.LoadUint64(qSlotWord(q.slot(p)))
		seq, claim := uint32(w), uint32(w>>32)
		d := int32(seq - uint32(p))
		if n <= 0 || d < 0 || d == 0 && claim == 0 || uint32(d)&uint32(q.mask) > 1 {
			return p, w
		}
		p = q.qPutSkipTo(p, seq, claim)
	}
}

// getFrontier returns the first position consumers have not claimed and
// its slot word, scanning up from the head hint (bounded).
func (q *Queue) getFrontier() (uint64, uint64) {
	h := atomic.LoadUint64(q.head)
	for n := q.budget; ; n-- {
		w := atomic.LoadUint64(qSlotWord(q.slot(h)))
		seq, claim := uint32(w), uint32(w>>32)
		d := int32(seq - uint32(h) - 1)
		if n <= 0 || d < 0 || d == 0 && claim&qClaimFull != 0 || (uint32(d)+1)&uint32(q.mask) > 1 {
			return h, w
		}
		h = q.qGetSkipTo(h, seq, claim)
	}
}

// Len returns the number of messages in the queue, including those being
// written or read at this instant. It is a snapshot that may be stale by
// the time it returns (Python's qsize).
func (q *Queue) Len() int {
	for range 4 {
		h, _ := q.getFrontier()
		t, _ := q.putFrontier()
		if h2, _ := q.getFrontier(); h2 != h {
			continue
		}
		d := int64(t - h)
		return int(min(max(d, 0), int64(q.limit)))
	}
	return 0
}

// Empty reports whether the queue holds no message (a snapshot).
func (q *Queue) Empty() bool {
	h, w := q.getFrontier()
	return int32(uint32(w)-uint32(h)-1) < 0
}

// Full reports whether the queue has no free slot (a snapshot).
func (q *Queue) Full() bool {
	if q.limit != q.capacity {
		return q.Len() >= int(q.limit)
	}
	t, w := q.putFrontier()
	return int32(uint32(w)-uint32(t)) < 0
}

// Shutdown states of the shared shutdown word.
const (
	qShutNone      = 0
	qShutDrain     = 1 // Puts fail; Gets drain, then fail
	qShutImmediate = 2 // Puts and Gets fail; what is left is discarded
)

// Closed reports whether this handle has been closed (Close).
func (q *Queue) Closed() bool { return q.handleClosed.Load() }

// IsShutdown reports whether the queue has been shut down (Shutdown), by
// any process, and not restarted since.
func (q *Queue) IsShutdown() bool { return atomic.LoadUint32(q.shutdown) != qShutNone }

// Close releases this handle, as io.Closer and Python's Queue.close do:
// its later calls return ErrClosed, and its calls blocked in Put or Get
// return ErrClosed. The queue itself, its messages and every other handle
// (in this process or another) go on; to stop the queue for everyone, use
// Shutdown. Closing twice returns nil. The memory stays mapped until the
// handle is no longer referenced.
func (q *Queue) Close() error {
	if q.handleClosed.Swap(true) {
		return nil
	}
	// Wakes this handle's sleepers (and, once, every other sleeper on the
	// queue, which looks again and sleeps again).
	q.wakeEpoch(q.notEmpty, true)
	q.wakeEpoch(q.notFull, true)
	return nil
}

// Shutdown stops the queue for every handle in every process, as Python
// 3.13's Queue.shutdown: later Puts fail with ErrShutdown; Gets return
// what remains and then fail with ErrShutdown; every producer and
// consumer blocked in any process wakes. With immediate, what remains is
// discarded instead and Gets fail at once; for a JoinableQueue the
// discarded messages count as done (Python calls task_done for each), so
// Join returns once the tasks already taken are done. A producer that
// claimed its slot before the Shutdown may still commit a message just
// after it: with immediate, the next Get or Join discards it. Shutdown
// again returns nil (an immediate one after a plain one discards). It
// returns ErrClosed on a closed handle. Restart makes the queue usable
// again.
func (q *Queue) Shutdown(immediate bool) error {
	if q.handleClosed.Load() {
		return ErrClosed
	}
	st := uint32(qShutDrain)
	if immediate {
		st = qShutImmediate
	}
	for range qEventTries { // bounded against a peer that rewrites the word
		old := atomic.LoadUint32(q.shutdown)
		if old >= st && old <= qShutImmediate {
			break
		}
		// Publishes the shutdown to every process.
		if atomic.CompareAndSwapUint32(q.shutdown, old, st) {
			break
		}
	}
	q.wakeEpoch(q.notEmpty, true)
	q.wakeEpoch(q.notFull, true)
	if immediate {
		q.discard()
	}
	return nil
}

// Restart makes a shut-down queue usable again, for every process: Puts
// and Gets work as before the Shutdown, and messages a plain Shutdown left
// undrained are there to get. A Get still draining in another process
// then waits for messages instead of failing. Restarting a queue that is
// not shut down does nothing. It returns ErrClosed on a closed handle.
// This is the documented way back for a persistent named queue, which
// otherwise stays shut down until its segment is deleted.
func (q *Queue) Restart() error {
	if q.handleClosed.Load() {
		return ErrClosed
	}
	atomic.StoreUint32(q.shutdown, qShutNone) // publishes the queue open again
	return nil
}

// discard takes every committed message out of the ring and drops it,
// counting nothing (for a JoinableQueue a discarded message is a task
// done: it was unfinished only by being in the ring). It stops at the
// first position with no committed message, or one being written or
// read.
func (q *Queue) discard() {
	for range q.budget {
		s, pos, _, st, w := q.claimGet(-1, false)
		if st != qOK {
			break
		}
		// Frees the slot for pos+C: the message is gone, uncounted.
		if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(uint32(pos)+uint32(q.capacity), 0)) {
			release.Store64(q.head, pos+1)
		}
	}
	q.wakeEpoch(q.notFull, false)
	if q.joinable {
		q.wakeJoiners()
	}
}

// State is a snapshot of a Queue, for inspection.
type State struct {
	Len         int  // messages in the queue (best effort)
	Cap         int  // capacity
	MaxMsgSize  int  // largest message accepted
	Closed      bool // this handle was closed (Close)
	Shutdown    bool // the queue was shut down (Shutdown) and not restarted
	GetWaiters  int  // getters registered as sleeping since the last notification (may include dead ones)
	PutWaiters  int  // putters registered as sleeping since the last notification (may include dead ones)
	Unfinished  int  // joinable queues: messages in the ring plus Taken
	Taken       int  // joinable queues: tasks taken and not yet done by live processes
	JoinWaiters int  // joinable queues: joiners registered as sleeping
	Head, Tail  uint64
}

// Stats returns this process's contention counters for this handle (see
// package stats): sleeps of Put and Get, wakes they made, timed calls
// that ran out, slots reclaimed from dead claimants, and calls whose spin
// ended in sleep. Only slow paths count: a Put into a queue with room and
// nobody asleep touches no counter.
func (q *Queue) Stats() stats.Stats { return q.ctr.Load() }

// State returns a snapshot of the queue.
func (q *Queue) State() State {
	var inRing, taken int
	if q.joinable {
		inRing, taken = q.committed(), q.takenNotDone()
	}
	return State{
		Len:         q.Len(),
		Cap:         int(q.limit),
		MaxMsgSize:  q.maxMsg,
		Closed:      q.Closed(),
		Shutdown:    q.IsShutdown(),
		GetWaiters:  int(q.notEmpty.sleepers()),
		PutWaiters:  int(q.notFull.sleepers()),
		Unfinished:  inRing + taken,
		Taken:       taken,
		JoinWaiters: int(atomic.LoadUint32(q.joinWaiters)),
		Head:        atomic.LoadUint64(q.head),
		Tail:        atomic.LoadUint64(q.tail),
	}
}
