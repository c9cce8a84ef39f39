package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// Binary layout of a Pipe (PipeSizeOf bytes, little-endian, 64-byte
// aligned recommended, 8-byte aligned required):
//
//	offset 0    uint32  magic "mppi"; stored last by Init, it publishes the pipe
//	offset 4    uint32  layout version (PipeVersion)
//	offset 8    uint32  capacity C of each ring, bytes, a power of two
//	offset 12   uint32  maximum message size, <= PipeMaxMsgSize
//	offset 16   uint32  flags: bit 0 one-way
//	offset 64   end 0:  uint64 owner (proc.ID.Pack; 0 until claimed),
//	                    uint32 closed (0 or 1)
//	offset 128  end 1:  the same
//	offset 192  ring 0: messages to end 0 (from end 1); see spscShared
//	offset 192+256+C  ring 1: messages to end 1, duplex pipes only
//
// Each ring is a 256-byte header (tail, head, reader-waiting and
// writer-waiting words, each on its own cache line) and C data bytes of
// records: a message of at most C-64 bytes is one record, a longer one a
// first piece carrying its total length and continuation pieces (see
// spscShared for the framing).
const (
	// PipeVersion is the layout version of a Pipe. Version 2: end owners
	// are process registry identities, not pids. Version 3: messages
	// longer than the ring travel in pieces. Version 5: payloads of 256
	// bytes or more start on a 64-byte boundary (4 was a layout tried and
	// withdrawn).
	PipeVersion = 5
	// PipeDefaultCapacity is the ring size of each direction unless
	// PipeOptions.Capacity says otherwise.
	PipeDefaultCapacity = 64 << 10
	// PipeMinCapacity and PipeMaxCapacity bound PipeOptions.Capacity.
	PipeMinCapacity = 256
	PipeMaxCapacity = 1 << 30
	// PipeMaxMsgSize is the largest message a pipe can carry, 2 GiB - 1
	// as in Python, whatever its ring size, and the default of
	// PipeOptions.MaxMsgSize.
	PipeMaxMsgSize = 1<<31 - 1

	pipeMagic      = 0x6970706d // "mppi"
	pipeFlagOneWay = 1
	pipeEndsOff    = 64
	pipeEndSize    = 64
	pipeRingsOff   = pipeEndsOff + 2*pipeEndSize
	pipeEndClosed  = 1

	pipeDefaultCheck = 100 * time.Millisecond

	// pipeAllocAhead bounds what RecvBytes allocates on the word of a first
	// piece's header before the bytes arrive: beyond it the buffer grows
	// with the pieces received.
	pipeAllocAhead = 64 << 20
)

// Errors of the pipe; it also returns ErrClosed, ErrFull, ErrEmpty,
// ErrTooLarge, ErrShortBuffer, io.EOF and shm.ErrCorrupt.
var (
	// ErrPeerGone is returned by Send when the other end of the pipe has
	// been closed, or its process has died (noticed by a Send that waits
	// for room, within PipeOptions.CheckInterval): what EPIPE is to a
	// kernel pipe. Recv reports the same condition as io.EOF once the
	// pipe is drained.
	ErrPeerGone = errors.New("ringbuf: pipe peer closed or died")
	// ErrPipeInUse is returned by OpenPipe and AttachPipe when the end
	// they would claim already belongs to a Conn.
	ErrPipeInUse = errors.New("ringbuf: pipe end already open")
	// ErrPipeReadOnly is returned by Send on the receiving end of a
	// one-way pipe (end 0).
	ErrPipeReadOnly = errors.New("ringbuf: pipe end is receive-only")
	// ErrPipeWriteOnly is returned by Recv and Poll on the sending end of
	// a one-way pipe (end 1).
	ErrPipeWriteOnly = errors.New("ringbuf: pipe end is send-only")
	// ErrMaxLength is returned (wrapped, with the length) by RecvBytesMax
	// for a message longer than its maxLength: Python's recv_bytes
	// (maxlength). The message is consumed and dropped; the pipe stays
	// usable and the next call receives the next message.
	ErrMaxLength = errors.New("ringbuf: pipe message longer than maxLength")
)

// PipeOptions configure a pipe. The zero value (or nil) means the defaults.
type PipeOptions struct {
	// Capacity is the size in bytes of the ring of each direction, rounded
	// up to a power of two in [PipeMinCapacity, PipeMaxCapacity]. Default
	// PipeDefaultCapacity. Read by CreatePipe, InitPipe and PipeSizeOf;
	// OpenPipe and AttachPipe take it from the pipe.
	Capacity int
	// MaxMsgSize is the largest message Send accepts, at most
	// PipeMaxMsgSize (the default). A message longer than Capacity-8
	// travels through the ring in pieces, so Capacity is a throughput
	// choice, not a limit. Read by CreatePipe and InitPipe.
	MaxMsgSize int
	// OneWay makes a one-way pipe, Python's Pipe(duplex=False): end 0
	// (the creator's) only receives and end 1 only sends. Default duplex.
	// Read by CreatePipe, InitPipe and PipeSizeOf.
	OneWay bool
	// CheckInterval is how often the process's liveness checker asks, for
	// its blocked calls, whether the peer's process is still alive; a call
	// learns of a death within about that long. Default 100 ms.
	CheckInterval time.Duration
	// Registry names the ends' processes, so that a dead peer can be told
	// from a live one. CreatePipe and OpenPipe use the segment's when nil.
	// For InitPipe and AttachPipe, nil means no registry: a dead peer is
	// then never noticed (Recv waits until its context is done), and a
	// dead process's end is never claimed again (see shm.Registry).
	Registry *shm.Registry
}

func (o *PipeOptions) registry() *shm.Registry {
	if o == nil {
		return nil
	}
	return o.Registry
}

// in returns o with seg's registry where o names none.
func (o *PipeOptions) in(seg *shm.Segment) *PipeOptions {
	return shm.WithRegistry(o, seg, func(c *PipeOptions) **shm.Registry { return &c.Registry })
}

func (o *PipeOptions) capacity() (int, error) {
	c := 0
	if o != nil {
		c = o.Capacity
	}
	switch {
	case c <= 0:
		return PipeDefaultCapacity, nil
	case c > PipeMaxCapacity:
		return 0, fmt.Errorf("ringbuf: pipe capacity %d exceeds %d", c, PipeMaxCapacity)
	case c < PipeMinCapacity:
		return PipeMinCapacity, nil
	}
	return 1 << bits.Len(uint(c-1)), nil
}

func (o *PipeOptions) oneWay() bool { return o != nil && o.OneWay }

func (o *PipeOptions) check() time.Duration {
	if o == nil || o.CheckInterval <= 0 {
		return pipeDefaultCheck
	}
	return o.CheckInterval
}

func pipeRings(oneWay bool) int {
	if oneWay {
		return 1
	}
	return 2
}

func pipeSize(capacity int, oneWay bool) int {
	return pipeRingsOff + pipeRings(oneWay)*(spscHeaderSize+capacity)
}

// PipeSizeOf returns the number of bytes a pipe made with opts occupies:
// 192 + (256 + Capacity) per direction. An invalid capacity gives 0.
func PipeSizeOf(opts *PipeOptions) int {
	c, err := opts.capacity()
	if err != nil {
		return 0
	}
	return pipeSize(c, opts.oneWay())
}

// pipeHeader is the first cache line of a pipe.
type pipeHeader struct {
	magic    uint32
	version  uint32
	capacity uint32
	maxMsg   uint32
	flags    uint32
}

// pipeEnd is an end's record, on its own cache line.
type pipeEnd struct {
	owner  uint64 // registry identity (proc.ID.Pack) of the end's process; 0: not claimed yet
	closed uint32 // pipeEndClosed once the end is closed
}

// Conn is one end of a pipe between two processes, Python's
// multiprocessing.connection.Connection for Pipe(). Obtain end 0 with
// CreatePipe or InitPipe and end 1 with OpenPipe or AttachPipe; the zero
// Conn is not usable. Each end belongs to one process at a time (its
// liveness is what the peer checks); Detach hands an end to another.
//
// Messages are byte slices of 0 to MaxMsgSize bytes (up to 2 GiB - 1),
// delivered whole or not at all, in order, exactly once. One longer than
// the ring (Capacity-8 bytes) is sent in pieces that the receiver
// reassembles; the pieces of one message are never interleaved with
// another message. A Send synchronizes before the Recv that receives its
// message, in any process mapping the pipe.
//
// A Conn must not be copied. One goroutine may send while another
// receives, but Sends must not run concurrently with each other, nor Recvs
// (and Polls) with each other: each direction is a single-producer,
// single-consumer ring. Goroutines that share an end for sending hold a
// lock of their own around each Send; one Send call writes every piece of
// its message, so their messages never interleave. Close may be called at
// any time from any goroutine.
type Conn struct {
	_      pipeNoCopy
	tx     *spscWriter // nil on the receive-only end
	rx     *spscReader // nil on the send-only end
	self   *pipeEnd
	peer   *pipeEnd
	end    int
	oneWay bool
	cap    int
	maxMsg int
	maxRec int // largest message sent as one record: min(maxMsg, spscMaxRec(cap))
	check  time.Duration
	reg    *proc.Registry
	closed atomic.Bool
	ctr    stats.Counters // this end's slow-path events (the rings count its wakes here)
	// lastCheck is when a non-blocking call last asked the registry
	// whether the peer lives (unix nanoseconds), to do so at most every
	// check.
	lastCheck atomic.Int64
	// part is the message being received in pieces; receivers only.
	part pipeRxMsg
}

// pipeRxMsg is a receiver's record of a message that arrives in pieces,
// kept across calls: a Recv that returns before the last piece (timeout,
// cancellation, try) leaves it for the next.
type pipeRxMsg struct {
	active  bool   // a first piece was taken, and not yet the last
	discard bool   // the message is dropped as it arrives (RecvBytesMax)
	total   int    // the message's length
	got     int    // bytes of it taken from the ring
	saved   []byte // the bytes taken (len got) when no call holds them; nil when discarding
}

type pipeNoCopy struct{}

func (*pipeNoCopy) Lock()   {}
func (*pipeNoCopy) Unlock() {}

func pipeCheckMem(mem []byte, need int) error {
	if len(mem) < need {
		return fmt.Errorf("ringbuf: pipe memory is %d bytes, need %d: %w", len(mem), need, shm.ErrCorrupt)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("ringbuf: pipe memory is not 8-byte aligned: %w", shm.ErrCorrupt)
	}
	return nil
}

func pipeParts(mem []byte) (*pipeHeader, [2]*pipeEnd) {
	return (*pipeHeader)(unsafe.Pointer(&mem[0])),
		[2]*pipeEnd{(*pipeEnd)(unsafe.Pointer(&mem[pipeEndsOff])), (*pipeEnd)(unsafe.Pointer(&mem[pipeEndsOff+pipeEndSize]))}
}

// InitPipe initializes a pipe in mem (at least PipeSizeOf(opts) bytes,
// 8-byte aligned; 64 recommended) and returns its end 0, owned by the
// calling process. Nothing else may use mem while InitPipe runs.
func InitPipe(mem []byte, opts *PipeOptions) (*Conn, error) {
	capacity, err := opts.capacity()
	if err != nil {
		return nil, err
	}
	maxMsg := PipeMaxMsgSize
	if opts != nil && opts.MaxMsgSize > 0 {
		if opts.MaxMsgSize > maxMsg {
			return nil, fmt.Errorf("ringbuf: pipe max message size %d exceeds %d: %w", opts.MaxMsgSize, PipeMaxMsgSize, ErrTooLarge)
		}
		maxMsg = opts.MaxMsgSize
	}
	oneWay := opts.oneWay()
	if err := pipeCheckMem(mem, pipeSize(capacity, oneWay)); err != nil {
		return nil, err
	}
	h, ends := pipeParts(mem)
	atomic.StoreUint32(&h.magic, 0)
	atomic.StoreUint32(&h.version, PipeVersion)
	atomic.StoreUint32(&h.capacity, uint32(capacity))
	atomic.StoreUint32(&h.maxMsg, uint32(maxMsg))
	var flags uint32
	if oneWay {
		flags = pipeFlagOneWay
	}
	atomic.StoreUint32(&h.flags, flags)
	for _, e := range ends {
		atomic.StoreUint64(&e.owner, 0)
		atomic.StoreUint32(&e.closed, 0)
	}
	atomic.StoreUint64(&ends[0].owner, proc.Or(opts.registry()).SelfPacked())
	for r := range pipeRings(oneWay) {
		spscInit(mem[pipeRingsOff+r*(spscHeaderSize+capacity):])
	}
	atomic.StoreUint32(&h.magic, pipeMagic) // publishes the pipe
	return newConn(mem, 0, opts)
}

// AttachPipe claims end (0 or 1) of the pipe that InitPipe set up in mem,
// possibly in another process, and returns it. End 0 is claimed by
// InitPipe itself, so it is free only after its owner's Detach, or once
// its process has died: an end whose process the registry reports dead is
// claimed again (a message its dead owner was receiving is received
// again, unless it came in pieces: the new owner drops the pieces its
// predecessor did not take). It fails with ErrPipeInUse if the end is held by a live
// process, and with shm.ErrCorrupt if mem does not hold a valid pipe.
func AttachPipe(mem []byte, end int, opts *PipeOptions) (*Conn, error) {
	if end != 0 && end != 1 {
		return nil, fmt.Errorf("ringbuf: pipe end %d, want 0 or 1", end)
	}
	if err := pipeCheckMem(mem, pipeRingsOff); err != nil {
		return nil, err
	}
	// Validate before claiming, so a corrupt pipe is left as it was.
	c, err := newConn(mem, end, opts)
	if err != nil {
		return nil, err
	}
	me := c.reg.SelfPacked()
	for {
		w := atomic.LoadUint64(&c.self.owner)
		if w != 0 && c.reg.Alive(proc.Unpack(w)) {
			return nil, fmt.Errorf("ringbuf: attaching pipe end %d (owner pid %d, registry slot %d): %w",
				end, c.reg.Pid(proc.Unpack(w)), proc.Unpack(w).Slot, ErrPipeInUse)
		}
		if atomic.CompareAndSwapUint64(&c.self.owner, w, me) {
			break
		}
	}
	if atomic.LoadUint32(&c.self.closed) != 0 {
		atomic.StoreUint64(&c.self.owner, 0)
		return nil, fmt.Errorf("ringbuf: attaching pipe end %d: %w", end, ErrClosed)
	}
	return c, nil
}

// newConn validates the pipe in mem and returns a handle on end.
func newConn(mem []byte, end int, opts *PipeOptions) (*Conn, error) {
	h, ends := pipeParts(mem)
	if m := atomic.LoadUint32(&h.magic); m != pipeMagic {
		return nil, fmt.Errorf("ringbuf: no pipe in memory (magic %#x): %w", m, shm.ErrCorrupt)
	}
	if v := atomic.LoadUint32(&h.version); v != PipeVersion {
		return nil, fmt.Errorf("ringbuf: pipe layout version %d, want %d: %w", v, PipeVersion, shm.ErrCorrupt)
	}
	capacity := int(atomic.LoadUint32(&h.capacity))
	maxMsg32 := atomic.LoadUint32(&h.maxMsg) // checked before int(), which is 32 bits on some platforms
	maxMsg := int(min(maxMsg32, PipeMaxMsgSize))
	flags := atomic.LoadUint32(&h.flags)
	if capacity < PipeMinCapacity || capacity > PipeMaxCapacity || capacity&(capacity-1) != 0 ||
		maxMsg32 > PipeMaxMsgSize || flags&^pipeFlagOneWay != 0 {
		return nil, fmt.Errorf("ringbuf: pipe header (capacity %d, max message %d, flags %#x): %w",
			capacity, maxMsg32, flags, shm.ErrCorrupt)
	}
	oneWay := flags&pipeFlagOneWay != 0
	if err := pipeCheckMem(mem, pipeSize(capacity, oneWay)); err != nil {
		return nil, err
	}
	for i, e := range ends {
		if cl := atomic.LoadUint32(&e.closed); cl&^pipeEndClosed != 0 {
			return nil, fmt.Errorf("ringbuf: pipe end %d state %#x: %w", i, cl, shm.ErrCorrupt)
		}
		if w := atomic.LoadUint64(&e.owner); proc.Unpack(w).Pack() != w {
			return nil, fmt.Errorf("ringbuf: pipe end %d owner %#x: %w", i, w, shm.ErrCorrupt)
		}
	}
	ring := func(r int) []byte { return mem[pipeRingsOff+r*(spscHeaderSize+capacity):] }
	c := &Conn{self: ends[end], peer: ends[1-end], end: end, oneWay: oneWay,
		cap: capacity, maxMsg: maxMsg, maxRec: min(maxMsg, spscMaxRec(capacity)),
		check: opts.check(), reg: proc.Or(opts.registry())}
	var err error
	// Ring r carries messages to end r.
	if !oneWay || end == 0 {
		if c.rx, err = newSPSCReader(ring(end), capacity, c.maxRec); err != nil {
			return nil, err
		}
		c.rx.ctr = &c.ctr
	}
	if !oneWay || end == 1 {
		to := 1 - end
		if oneWay {
			to = 0
		}
		if c.tx, err = newSPSCWriter(ring(to), capacity); err != nil {
			return nil, err
		}
		c.tx.ctr = &c.ctr
	}
	return c, nil
}

func pipeSpec(name string, size int) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindPipe, KindVersion: PipeVersion, Size: int64(size)}
}

// CreatePipe places a new pipe named name in seg and returns its end 0,
// owned by the calling process. The other process gets end 1 with
// OpenPipe(seg, name, 1, opts). It fails with shm.ErrExist if the name is taken.
func CreatePipe(seg *shm.Segment, name string, opts *PipeOptions) (*Conn, error) {
	size := PipeSizeOf(opts)
	if size == 0 {
		_, err := opts.capacity()
		return nil, err
	}
	var c *Conn
	mem, err := seg.Alloc(pipeSpec(name, size), func(mem []byte) (err error) {
		c, err = InitPipe(mem, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ringbuf: creating pipe %q: %w", name, err)
	}
	shm.Keep(seg, c, mem)
	stats.Publish(seg.Path(), name, shm.KindPipe.String(), &c.ctr)
	return c, nil
}

// OpenPipe claims end (0 or 1) of the pipe named name in seg, as
// AttachPipe does. The creator holds end 0, so another process normally
// opens end 1. Only opts.CheckInterval and opts.Registry are used.
func OpenPipe(seg *shm.Segment, name string, end int, opts *PipeOptions) (*Conn, error) {
	mem, err := seg.Lookup(pipeSpec(name, 0))
	if err != nil {
		return nil, fmt.Errorf("ringbuf: opening pipe %q: %w", name, err)
	}
	h, err := AttachPipe(mem, end, opts.in(seg))
	if err == nil {
		shm.Keep(seg, h, mem)
		stats.Publish(seg.Path(), name, shm.KindPipe.String(), &h.ctr)
	} else {
		seg.Release(mem)
	}
	return h, err
}

// End returns which end of the pipe c is: 0 or 1.
func (c *Conn) End() int { return c.end }

// MaxMsgSize returns the largest message Send accepts.
func (c *Conn) MaxMsgSize() int { return c.maxMsg }

// Readable reports whether this end receives: false only on the send-only
// end of a one-way pipe (Python's Connection.readable).
func (c *Conn) Readable() bool { return c.rx != nil }

// Writable reports whether this end sends: false only on the
// receive-only end of a one-way pipe (Python's Connection.writable).
func (c *Conn) Writable() bool { return c.tx != nil }

// Closed reports whether this handle is closed or detached (Python's
// Connection.closed): its calls return ErrClosed. It says nothing of the
// peer; see State.
func (c *Conn) Closed() bool { return c.closed.Load() }

// Send sends msg, waiting for room in the ring while it is full, until ctx
// is done (nil: never). It returns nil; ErrTooLarge; ErrClosed after Close;
// ErrPeerGone when the peer closed its end or (noticed while waiting) its
// process died; ErrPipeReadOnly; ctx.Err(); or shm.ErrCorrupt. The message
// is copied: msg may be reused when Send returns. A message of at most
// Capacity-8 bytes goes as one record: Send then makes no syscall unless
// the receiver sleeps, and no allocation. A longer one goes in pieces of
// about Capacity/4 bytes, each waiting for room; a Send that fails part
// way leaves no message: the receiver drops the pieces it took.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	return c.send(ctx, msg, time.Time{}, false)
}

// SendTimeout is Send waiting at most d for room; it returns ErrFull when
// the ring stays full. A message in pieces must be all sent within d, or
// it is abandoned (ErrFull). A d of zero or less tries once, like TrySend.
func (c *Conn) SendTimeout(msg []byte, d time.Duration) error {
	// Try first: the clock is read only when the call has to wait. A
	// message in pieces cannot be tried and then waited for.
	if len(msg) <= c.maxRec || d <= 0 {
		if err := c.send(context.Background(), msg, time.Time{}, true); err != ErrFull || d <= 0 {
			return err
		}
	}
	return c.send(context.Background(), msg, futex.After(d), false)
}

// TrySend is Send without waiting: ErrFull when there is no room. A
// message longer than the ring is sent only if the receiver makes room as
// fast as the pieces come.
func (c *Conn) TrySend(msg []byte) error { return c.send(context.Background(), msg, time.Time{}, true) }

func (c *Conn) send(ctx context.Context, msg []byte, deadline time.Time, try bool) error {
	w := c.tx
	if w == nil {
		return ErrPipeReadOnly
	}
	if len(msg) > c.maxRec {
		return c.sendPieces(ctx, msg, deadline, try)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if atomic.LoadUint32(&c.peer.closed) != 0 {
		return ErrPeerGone
	}
	if ok, err := w.tryWrite(msg); ok || err != nil {
		return err
	}
	if err := c.waitRoom(ctx, spscSpanMax(len(msg)), deadline, try); err != nil {
		return err
	}
	_, err := w.tryWrite(msg)
	return err
}

// sendPieces sends a message longer than the largest record: a first
// piece with its total length, then continuations. Sends do not overlap,
// so no other message comes between them.
func (c *Conn) sendPieces(ctx context.Context, msg []byte, deadline time.Time, try bool) error {
	if len(msg) > c.maxMsg {
		return fmt.Errorf("ringbuf: pipe message of %d bytes, max %d: %w", len(msg), c.maxMsg, ErrTooLarge)
	}
	w := c.tx
	piece := c.cap/4 - spscRecHeader
	for off := 0; off < len(msg); {
		// A failure past the first piece abandons the message: the
		// receiver drops its pieces when the next message starts or the
		// stream ends.
		if c.closed.Load() {
			return ErrClosed
		}
		if atomic.LoadUint32(&c.peer.closed) != 0 {
			return ErrPeerGone
		}
		kind, head := uint32(spscPieceMore), 0
		if off == 0 {
			kind, head = spscPieceFirst, spscPieceTotal
		}
		k := min(piece-head, len(msg)-off)
		if err := c.waitRoom(ctx, spscSpanMax(head+k), deadline, try); err != nil {
			return err
		}
		w.writePiece(kind, uint64(len(msg)), msg[off:off+k])
		off += k
	}
	return nil
}

// waitRoom waits until the ring has room for a record of rec bytes: nil,
// or ErrFull at the deadline or for try, ErrClosed, ErrPeerGone, ctx.Err()
// or a corruption error.
func (c *Conn) waitRoom(ctx context.Context, rec uint64, deadline time.Time, try bool) error {
	w := c.tx
	if ok, err := w.room(rec); ok || err != nil {
		return err
	}
	if try {
		if !c.peerAliveRateLimited() {
			return ErrPeerGone
		}
		return ErrFull
	}
	for i := 0; futex.Spin(i); i++ {
		if ok, err := w.room(rec); ok || err != nil {
			futex.SpinDone(ok)
			return err
		}
	}
	futex.SpinDone(false)
	spun := true
	// Whatever ends the wait, leave no waiting flag behind.
	defer atomic.CompareAndSwapUint32(&w.sh.wwait, 1, 0)
	var ck pipeCheck
	defer ck.done(c, &w.sh.wwait)
	ck.start(c)
	for {
		atomic.StoreUint32(&w.sh.wwait, 1)
		if ok, err := w.room(rec); ok || err != nil {
			return err
		}
		if c.closed.Load() {
			return ErrClosed
		}
		if atomic.LoadUint32(&c.peer.closed) != 0 {
			return ErrPeerGone
		}
		switch err := c.sleep(ctx, &w.sh.wwait, deadline, &ck, &spun); err {
		case nil:
			continue
		case errPipeDeadline:
			return ErrFull
		case errPipeCheck:
			if !c.peerAlive() {
				return ErrPeerGone
			}
			continue
		default:
			return err
		}
	}
}

var (
	errPipeDeadline = errors.New("deadline")
	errPipeCheck    = errors.New("check")
)

// pipeCheck is how a blocked Send or Recv learns that its peer died. For
// its first check interval it wakes at the interval's end and asks the
// registry itself (errPipeCheck); then, still blocked, it registers with
// the process's liveness checker (robust.WatchOwner), which asks for all
// of the process's blocked ends once per interval and wakes only those
// whose peer died, and it sleeps without a check deadline: a blocked end
// whose peer lives costs no wake-up (10,000 of them, each waking every
// interval to ask, made 100,000 wake-ups a second). A wake that brings
// neither a record nor room is then answered by asking about the peer.
// Not from the first sleep: registering takes the checker's mutex, which
// the sleeps of a few microseconds in a busy pipe should not pay.
type pipeCheck struct {
	next    time.Time // the end of the first interval; zero once watched
	watched bool      // registered with the checker
}

func (k *pipeCheck) start(c *Conn) { k.next = futex.After(c.check) }

// done undoes the registration, if any.
func (k *pipeCheck) done(c *Conn, word *uint32) {
	if k.watched {
		robust.UnwatchOwner(&c.peer.owner, word, c.reg)
	}
}

// sleep waits on word while it is 1, until woken, the deadline
// (errPipeDeadline), a liveness check (errPipeCheck) or ctx. spun is the
// caller's "the spin ran out" flag, for the counters.
func (c *Conn) sleep(ctx context.Context, word *uint32, deadline time.Time, k *pipeCheck, spun *bool) error {
	wake := deadline
	if !k.next.IsZero() && (wake.IsZero() || k.next.Before(wake)) {
		wake = k.next
	}
	c.ctr.Sleep(spun)
	err := futex.Wait(ctx, word, 1, wake)
	if err != nil && err != futex.ErrTimeout {
		return err // ctx done
	}
	// Check the clock after every wakeup, not only on timeouts, so that a
	// peer that keeps rewriting the word cannot hold us past a deadline.
	now := time.Now()
	if !deadline.IsZero() && !now.Before(deadline) {
		c.ctr.Timeout()
		return errPipeDeadline
	}
	switch {
	case k.watched && err == nil:
		return errPipeCheck // perhaps the checker: ask
	case k.next.IsZero() || now.Before(k.next):
		return nil
	}
	// The first interval is over: from now on the checker watches.
	k.next = time.Time{}
	k.watched = robust.WatchOwner(&c.peer.owner, word, c.reg, c.check)
	return errPipeCheck
}

// peerAlive reports whether the peer's process may still send or receive:
// true while the peer end is unclaimed, false once it is closed or its
// process is gone. It asks the process registry (one fcntl).
func (c *Conn) peerAlive() bool {
	if atomic.LoadUint32(&c.peer.closed) != 0 {
		return false
	}
	w := atomic.LoadUint64(&c.peer.owner)
	if w == 0 {
		return true
	}
	return c.reg.Alive(proc.Unpack(w))
}

// peerAliveRateLimited is peerAlive for non-blocking calls: it asks the registry
// at most once per check interval and otherwise assumes the peer lives.
func (c *Conn) peerAliveRateLimited() bool {
	if atomic.LoadUint32(&c.peer.closed) != 0 {
		return false
	}
	now := time.Now().UnixNano()
	last := c.lastCheck.Load()
	if now-last < int64(c.check) || !c.lastCheck.CompareAndSwap(last, now) {
		return true
	}
	return c.peerAlive()
}

// Recv receives the next message into buf and returns its length, waiting
// until one arrives or ctx is done (nil: never). Once the peer has closed
// its end or its process has died (checked every CheckInterval while
// waiting), Recv returns the messages already sent and then io.EOF; a
// message of which only some pieces came is dropped. A buf shorter than
// the message gives the message's length and ErrShortBuffer, leaving the
// message in the pipe: call again with a buffer that long, or use
// RecvBytes, which allocates one. Other errors: ErrClosed after Close,
// ErrPipeWriteOnly, ctx.Err(), shm.ErrCorrupt. Recv of a message that fits
// the ring does not allocate; a message in pieces goes straight into buf,
// and a Recv that returns before its last piece (timeout, cancellation)
// keeps the part it took for the next call, which allocates.
func (c *Conn) Recv(ctx context.Context, buf []byte) (int, error) {
	return c.recv(ctx, buf, time.Time{}, false)
}

// RecvTimeout is Recv waiting at most d; it returns ErrEmpty when no
// message arrives in time, or not all of one. A d of zero or less tries
// once, like TryRecv.
func (c *Conn) RecvTimeout(buf []byte, d time.Duration) (int, error) {
	if d <= 0 {
		return c.recv(context.Background(), buf, time.Time{}, true)
	}
	// Try first: the clock is read only when the call has to wait.
	if n, done, err := c.recvFast(buf); done {
		return n, err
	}
	return c.recv(context.Background(), buf, futex.After(d), false)
}

// TryRecv is Recv without waiting: ErrEmpty when no message is there, or
// not yet all of one (the pieces that came are kept for the next call).
func (c *Conn) TryRecv(buf []byte) (int, error) {
	return c.recv(context.Background(), buf, time.Time{}, true)
}

// RecvBytes receives the next message into a new slice of its exact size:
// the way to receive a message whose size is not known in advance. It
// waits and ends like Recv. A message in pieces announces its length in
// its first piece; RecvBytes allocates that much (at most 64 MiB before
// the bytes arrive, growing with them beyond) once it has checked the
// length against MaxMsgSize. Use RecvBytesMax to bound it further.
func (c *Conn) RecvBytes(ctx context.Context) ([]byte, error) {
	return c.RecvBytesMax(ctx, c.maxMsg)
}

// RecvBytesMax is RecvBytes refusing a message longer than maxLength
// bytes, Python's recv_bytes(maxlength): it consumes and drops such a
// message (taking its pieces as they come, without keeping them) and
// returns ErrMaxLength, wrapped with the length; the next call receives
// the next message. Nothing longer than maxLength is allocated. If it
// returns part way through such a message (a timeout, a cancelled
// context), the next receive finishes dropping it: a RecvBytesMax it is
// too long for then returns ErrMaxLength, any other receive the next
// message.
func (c *Conn) RecvBytesMax(ctx context.Context, maxLength int) ([]byte, error) {
	if c.rx == nil {
		return nil, ErrPipeWriteOnly
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	n, b, err := c.recvSlow(ctx, nil, true, max(maxLength, 0), time.Time{}, false)
	if errors.Is(err, ErrMaxLength) {
		return nil, fmt.Errorf("ringbuf: pipe message of %d bytes, maxLength %d: %w", n, maxLength, err)
	}
	return b, err
}

// recvFast receives a whole message that is waiting, without a piece in
// progress; done is false when the call must take the slow path.
func (c *Conn) recvFast(buf []byte) (n int, done bool, err error) {
	if c.rx == nil {
		return 0, true, ErrPipeWriteOnly
	}
	if c.closed.Load() {
		return 0, true, ErrClosed
	}
	if !c.part.active {
		if n, ok, err := c.rx.tryRead(buf); ok || err != nil {
			return n, true, err
		}
	}
	return 0, false, nil
}

func (c *Conn) recv(ctx context.Context, buf []byte, deadline time.Time, try bool) (int, error) {
	r := c.rx
	if r == nil {
		return 0, ErrPipeWriteOnly
	}
	if c.closed.Load() {
		return 0, ErrClosed
	}
	if !c.part.active {
		if n, ok, err := r.tryRead(buf); ok || err != nil {
			return n, err
		}
		// Wait as before pieces existed; only a piece takes recvSlow.
		if err := c.waitReadable(ctx, deadline, try); err != nil {
			return 0, err
		}
		if n, ok, err := r.tryRead(buf); ok || err != nil {
			return n, err
		}
	}
	n, _, err := c.recvSlow(ctx, buf, false, 0, deadline, try)
	return n, err
}

// recvSlow receives the next message, waiting for it and for each of its
// pieces. With alloc false it goes into buf (ErrShortBuffer, leaving the
// message, when buf is too short); with alloc it goes into a new slice,
// returned, and a message longer than limit is consumed and dropped
// (ErrMaxLength). n is the message's length.
func (c *Conn) recvSlow(ctx context.Context, buf []byte, alloc bool, limit int, deadline time.Time, try bool) (n int, out []byte, err error) {
	r := c.rx
	p := &c.part
	for {
		if !p.active {
			if err := c.waitReadable(ctx, deadline, try); err != nil {
				return 0, nil, err
			}
			h, _, err := r.next()
			if err != nil {
				return 0, nil, err
			}
			switch k, n := h&spscPieceKinds, int(h&^spscPieceKinds); k {
			case 0: // a whole message
				switch {
				case !alloc && n > len(buf):
					return n, nil, ErrShortBuffer
				case !alloc:
					r.take(buf, n)
					return n, nil, nil
				case n > limit:
					r.takePiece(nil, 0, n)
					return n, nil, ErrMaxLength
				}
				out = make([]byte, n)
				r.take(out, n)
				return n, out, nil
			case spscPieceMore: // the rest of a message whose start this end never took
				r.takePiece(nil, 0, n)
				continue
			}
			n := int(h &^ spscPieceKinds)
			total := r.pieceTotal(n)
			if total > uint64(c.maxMsg) || total < uint64(n-spscPieceTotal) {
				return 0, nil, fmt.Errorf("ringbuf: pipe message of %d bytes (first piece %d), max %d: %w",
					total, n, c.maxMsg, shm.ErrCorrupt)
			}
			t := int(total)
			if !alloc && t > len(buf) {
				return t, nil, ErrShortBuffer
			}
			*p = pipeRxMsg{active: true, total: t}
			if alloc && t > limit {
				p.discard = true
			} else if alloc {
				p.saved = make([]byte, 0, min(t, pipeAllocAhead))
			}
			r.takePiece(p.dst(buf, alloc, n-spscPieceTotal), spscPieceTotal, n)
			p.got = n - spscPieceTotal
		} else { // resume a message a previous call began
			switch {
			case p.discard: // dropped as it comes, whoever calls
			case !alloc && p.total > len(buf):
				return p.total, nil, ErrShortBuffer
			case !alloc && !p.discard:
				copy(buf, p.saved)
				p.saved = nil
			case alloc && p.total > limit && !p.discard:
				p.discard, p.saved = true, nil
			}
		}
		for p.got < p.total {
			if err := c.waitReadable(ctx, deadline, try); err != nil {
				switch {
				case err == ErrEmpty || ctx != nil && err == ctx.Err():
					// Keep what came for the next call.
					if !alloc && !p.discard {
						p.saved = append([]byte(nil), buf[:p.got]...)
					}
				default: // io.EOF: the sender is gone part way; or closed, or corrupt
					*p = pipeRxMsg{}
				}
				return 0, nil, err
			}
			h, _, err := r.next()
			if err != nil {
				*p = pipeRxMsg{}
				return 0, nil, err
			}
			if h&spscPieceKinds != spscPieceMore {
				// The sender gave this message up (its Send failed part
				// way): drop it, and take the record as the next message.
				*p = pipeRxMsg{}
				break
			}
			n := int(h &^ spscPieceKinds)
			if n > p.total-p.got {
				*p = pipeRxMsg{}
				return 0, nil, fmt.Errorf("ringbuf: pipe piece of %d bytes at %d of a %d-byte message: %w",
					n, p.got, p.total, shm.ErrCorrupt)
			}
			r.takePiece(p.dst(buf, alloc, n), 0, n)
			p.got += n
		}
		if p.active {
			n, out, drop := p.total, p.saved, p.discard
			*p = pipeRxMsg{}
			if drop {
				// The refusal is this call's if the message is too long
				// for it too; a call that only finishes a drop an earlier
				// RecvBytesMax began (and gave up waiting on) goes on to
				// the next message.
				if alloc && n > limit {
					return n, nil, ErrMaxLength
				}
				continue
			}
			if !alloc {
				out = nil
			}
			return n, out, nil
		}
	}
}

// dst returns where the next n bytes of the message go: buf, the growing
// saved slice (alloc), or nil when the message is dropped.
func (p *pipeRxMsg) dst(buf []byte, alloc bool, n int) []byte {
	switch {
	case p.discard:
		return nil
	case !alloc:
		return buf[p.got : p.got+n]
	}
	p.saved = slices.Grow(p.saved, n)[:p.got+n]
	return p.saved[p.got:]
}

// Poll reports whether Recv would return without waiting (a message, or
// the end of the stream) within d. For a message in pieces it reports the
// first piece: Recv may then wait for the rest. A d of zero or less
// checks once. The error is ErrClosed, ErrPipeWriteOnly or shm.ErrCorrupt.
func (c *Conn) Poll(d time.Duration) (bool, error) {
	if c.rx == nil {
		return false, ErrPipeWriteOnly
	}
	var deadline time.Time
	if d > 0 {
		deadline = futex.After(d)
	}
	switch err := c.waitReadable(context.Background(), deadline, d <= 0); err {
	case nil, io.EOF:
		return true, nil
	case ErrEmpty:
		return false, nil
	default:
		return false, err
	}
}

// waitReadable returns nil when a record is ready to read, io.EOF when the
// peer is gone and the ring drained, ErrEmpty at the deadline or for try,
// or ErrClosed, ctx.Err() or a corruption error.
func (c *Conn) waitReadable(ctx context.Context, deadline time.Time, try bool) error {
	r := c.rx
	if r == nil {
		return ErrPipeWriteOnly
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok, err := r.next(); ok || err != nil {
		return err
	}
	if try {
		if !c.peerAliveRateLimited() {
			return c.drainedOr(io.EOF)
		}
		return ErrEmpty
	}
	for i := 0; futex.Spin(i); i++ {
		if _, ok, err := r.next(); ok || err != nil {
			futex.SpinDone(ok)
			return err
		}
	}
	futex.SpinDone(false)
	spun := true
	// Whatever ends the wait, leave no waiting flag behind.
	defer atomic.CompareAndSwapUint32(&r.sh.rwait, 1, 0)
	var ck pipeCheck
	defer ck.done(c, &r.sh.rwait)
	ck.start(c)
	for {
		atomic.StoreUint32(&r.sh.rwait, 1)
		if _, ok, err := r.next(); ok || err != nil {
			return err
		}
		if c.closed.Load() {
			return ErrClosed
		}
		if atomic.LoadUint32(&c.peer.closed) != 0 {
			return c.drainedOr(io.EOF)
		}
		err := c.sleep(ctx, &r.sh.rwait, deadline, &ck, &spun)
		switch err {
		case nil:
			continue
		case errPipeDeadline:
			return c.drainedOr(ErrEmpty)
		case errPipeCheck:
			if !c.peerAlive() {
				return c.drainedOr(io.EOF)
			}
			continue
		}
		return err
	}
}

// drainedOr re-checks the ring after the peer was seen gone (its last
// publishing store precedes its closed flag) and returns nil if a record
// is there, else err.
func (c *Conn) drainedOr(err error) error {
	if _, ok, e := c.rx.next(); ok || e != nil {
		return e
	}
	return err
}

// Close closes this end of the pipe: later calls on c return ErrClosed,
// calls blocked on c return ErrClosed, and the peer's Recv returns io.EOF
// once it has read what c sent, and its Send ErrPeerGone. Messages sent to
// c and not received are dropped. Close wakes every waiter of the pipe in
// every process. It does not free or unmap the memory; a second Close
// returns nil.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	atomic.StoreUint32(&c.self.closed, pipeEndClosed) // after our last publishing store
	c.wakeAll()
	return nil
}

// Detach gives up this end without closing it, so that another process
// can claim it with AttachPipe or OpenPipe: the way to hand end 0 to a
// child. Later calls on c return ErrClosed, and calls blocked on c wake
// with ErrClosed. While no process holds the end, its peer waits as for a
// live peer. Detach after Close, or a second Detach, returns ErrClosed.
func (c *Conn) Detach() error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	atomic.CompareAndSwapUint64(&c.self.owner, c.reg.SelfPacked(), 0)
	c.wakeAll()
	return nil
}

func (c *Conn) wakeAll() {
	if w := c.tx; w != nil {
		pipeWakeWord(&w.sh.rwait)
		pipeWakeWord(&w.sh.wwait)
	}
	if r := c.rx; r != nil {
		pipeWakeWord(&r.sh.rwait)
		pipeWakeWord(&r.sh.wwait)
	}
}

// pipeWakeWord wakes every sleeper on a waiting word. The store of 0 makes
// a sleeper that has not yet entered the kernel return at once.
func pipeWakeWord(w *uint32) {
	atomic.StoreUint32(w, 0)
	futex.WakeAll(w)
}

// PipeState is a snapshot of one end of a pipe, for inspection.
type PipeState struct {
	End        int  // 0 or 1
	OneWay     bool // one-way pipe: end 0 receives, end 1 sends
	Capacity   int  // bytes per ring
	MaxMsgSize int
	Closed     bool // this end is closed
	Pid        int  // this end's process
	PeerSlot   int  // the peer's slot in the process registry; 0 while the peer end is unclaimed
	PeerPid    int  // its pid, as it saw itself (display only; 0: unknown)
	PeerAlive  bool // the registry says the peer's process lives
	PeerClosed bool
	// RecvBytes is the ring space taken by messages waiting for this end
	// (record headers and padding included); SendBytes the space taken by
	// messages this end sent that the peer has not received. -1 when the
	// indices are corrupt.
	RecvBytes int
	SendBytes int
	// RecvWaiting and SendWaiting report a sleeper (in either process) on
	// the ring this end receives from, or sends to.
	RecvWaiting bool
	SendWaiting bool
	// Wakes counts the futex wake calls this handle made.
	Wakes uint64
}

// Stats returns this process's contention counters for this end (see
// package stats): sleeps of Send and Recv, wakes they made for the peer,
// timed calls that ran out, and calls whose spin ended in sleep. Only
// slow paths count: a Send into a ring with room and no sleeping reader
// touches no counter.
func (c *Conn) Stats() stats.Stats { return c.ctr.Load() }

// State returns a snapshot of the pipe as this end sees it. It asks the
// process registry whether the peer is alive.
func (c *Conn) State() PipeState {
	st := PipeState{End: c.end, OneWay: c.oneWay, Capacity: c.cap, MaxMsgSize: c.maxMsg,
		Closed: c.closed.Load(), PeerClosed: atomic.LoadUint32(&c.peer.closed) != 0,
		Wakes: c.ctr.Load().Wakes}
	st.Pid = c.reg.Pid(proc.Unpack(atomic.LoadUint64(&c.self.owner)))
	if w := atomic.LoadUint64(&c.peer.owner); w != 0 {
		id := proc.Unpack(w)
		st.PeerSlot = int(id.Slot)
		st.PeerPid = c.reg.Pid(id)
		st.PeerAlive = c.reg.Alive(id)
	}
	used := func(sh *spscShared) int {
		u := atomic.LoadUint64(&sh.tail) - atomic.LoadUint64(&sh.head)
		if u > uint64(c.cap) {
			return -1
		}
		return int(u)
	}
	if r := c.rx; r != nil {
		st.RecvBytes = used(r.sh)
		st.RecvWaiting = atomic.LoadUint32(&r.sh.rwait) != 0 || atomic.LoadUint32(&r.sh.wwait) != 0
	}
	if w := c.tx; w != nil {
		st.SendBytes = used(w.sh)
		st.SendWaiting = atomic.LoadUint32(&w.sh.rwait) != 0 || atomic.LoadUint32(&w.sh.wwait) != 0
	}
	return st
}
