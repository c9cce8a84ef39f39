package ringbuf

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// A single-producer single-consumer byte ring (Lamport's ring with cached
// indices), the transport under a Pipe. Shared layout, spscHeaderSize bytes
// followed by cap data bytes:
//
//	+0    uint64  tail: bytes ever written; producer-owned
//	+64   uint64  head: bytes ever read; consumer-owned
//	+128  uint32  reader-waiting futex word
//	+192  uint32  writer-waiting futex word
//	+256  cap bytes of records
//
// Bytes in [head, tail) belong to the consumer; bytes in [tail, head+cap)
// belong to the producer. tail and head only grow (a uint64 byte count does
// not wrap in practice) and are always multiples of spscRecAlign.
//
// A record is an 8-byte header, the low half a word h and the high half ^h
// (a cheap check against garbage), followed by n payload bytes, padded to a
// multiple of 8. A payload of spscAlignMin bytes or more starts on a 64-byte
// boundary of the data area: 0 to 56 bytes of padding, which both sides
// compute from the record's position and n (spscPad), lie between the
// header and the payload. Copied 8 bytes off a line boundary, every other
// 32-byte access of a 4 KiB payload spans two cache lines; aligned, the
// one-way W6-4KiB pipe moved 15.4-15.6 GB/s against 11.8-13.4 unaligned
// (mpipc bench, alternated, 2 vCPUs). A payload that reaches the end of the
// data area continues at its start: records are never split in their header
// (the header is 8-aligned) and never padded to the end of the ring. h is n
// for a whole message (n <= the largest whole record, min(max message,
// cap-64), so that a record with its padding always fits the ring); a
// message longer than that travels as pieces, records with a kind bit in h
// above n (n <= cap-8 < 1<<30):
//
//	h = n | spscPieceFirst  the first piece: a uint64 total length of the
//	                        message, then its first n-8 bytes (n >= 8)
//	h = n | spscPieceMore   a continuation: the next n bytes
//
// The message is complete when the pieces carried total bytes. A first
// piece or a whole message where a continuation is due means the sender
// gave its message up (its Send failed part way); the receiver drops what
// it took of it. A continuation where none is due is the rest of a message
// whose start this end never took (its previous owner died part way), and
// is dropped too.
//
// Each side keeps its own index in process memory and only ever stores it
// to the shared word, never reads it back, so a peer that scribbles on our
// index cannot move us. The peer's index is read only when the cached copy
// says the ring is full (producer) or empty (consumer), and it is validated
// before use: it must lie between our cached copy and our own index, and be
// 8-aligned; a record header must carry ^h, a known kind, n within the
// record bounds above, and fit in the published bytes; a first piece's
// total must not exceed the pipe's maximum message size, nor pieces carry
// more than it. Anything else is shm.ErrCorrupt.
//
// The consumer publishes head after every record, although in Go that
// store is a full fence: giving space back in batches would be cheaper,
// but then a Send could wait for space that its receiver has already
// read, and two processes that each wait in Send for the other could
// deadlock where a kernel pipe would not.
//
// Sleeping: a consumer that found the ring empty after spinning stores 1 to
// the reader-waiting word, re-checks the ring, and futex-waits on the word
// while it is 1. A producer, after its publishing store of tail, loads the
// word and, only if it is nonzero, swaps it to 0 and wakes. Go's atomics are
// sequentially consistent, so either the producer sees the 1 or the
// consumer's re-check sees the new tail: no lost wakeup, and no syscall
// while the consumer is awake. The writer-waiting word works the same way
// for a producer that found the ring full.
//
// On amd64 the publishing store is an XCHG, a full barrier that the
// load of the waiting word after it needs. A plain MOV there loses
// wakeups (TestPipeSleepersAcrossProcesses hangs) unless sleepers pay for
// the barrier with membarrier(2); that variant was measured and is not
// used: it cuts an uncontended Send+Recv from 38 to 24 ns, but across
// processes (2 vCPUs, interleaved sets of 5-8 runs) it moved 64-byte
// messages by -12% to +16% from set to set and made 4 KiB ones 8-12%
// slower: a consumer that keeps up then reloads tail for nearly every
// record (a cache-line round trip each, and the producer's stores wait
// for the lines the consumer holds), and every sleep adds an
// inter-processor interrupt.
type spscShared struct {
	tail  uint64 // producer: publishes the records before it (release)
	_     [56]byte
	head  uint64 // consumer: frees the bytes before it (release)
	_     [56]byte
	rwait uint32 // 1: the consumer may sleep on this word
	_     [60]byte
	wwait uint32 // 1: the producer may sleep on this word
	_     [60]byte
}

const (
	spscHeaderSize = int(unsafe.Sizeof(spscShared{})) // 256
	spscRecHeader  = 8
	spscRecAlign   = 8
	spscLine       = 64  // a payload of spscAlignMin bytes or more starts on such a boundary
	spscAlignMin   = 256 // below it, padding would cost more ring than the split accesses cost time

	spscPieceFirst = 1 << 31 // record header kind: the first piece of a long message
	spscPieceMore  = 1 << 30 // record header kind: a continuation piece
	spscPieceKinds = spscPieceFirst | spscPieceMore
	spscPieceTotal = 8 // bytes of the total length at the start of a first piece
)

// spscRecSize is the ring space one record of n payload bytes takes, not
// counting the padding before an aligned payload (spscPad).
func spscRecSize(n int) uint64 {
	return (uint64(n) + spscRecHeader + spscRecAlign - 1) &^ (spscRecAlign - 1)
}

// spscPad is the padding between the header of a record at position pos
// and its n payload bytes: enough to start a payload of spscAlignMin bytes
// or more on a line boundary, none for a shorter one. The data area's
// size is a power of two of at least spscLine, so a position's offset in
// it is on a boundary exactly when the position is.
func spscPad(pos uint64, n int) uint64 {
	if n < spscAlignMin {
		return 0
	}
	return -(pos + spscRecHeader) & (spscLine - 1)
}

// spscSpan is the ring space a record of n payload bytes at pos takes.
func spscSpan(pos uint64, n int) uint64 { return spscRecSize(n) + spscPad(pos, n) }

// spscSpanMax is the most ring space a record of n payload bytes takes,
// wherever it starts: what a sender waits for before it knows the padding.
func spscSpanMax(n int) uint64 {
	if n < spscAlignMin {
		return spscRecSize(n)
	}
	return spscRecSize(n) + spscLine - spscRecAlign
}

// spscMaxRec is the largest payload one record may carry in a ring of cap
// bytes: its span, with the most padding, is cap.
func spscMaxRec(cap int) int { return cap - spscRecHeader - (spscLine - spscRecAlign) }

// spscWriter is the producer's process-local handle.
type spscWriter struct {
	sh   *spscShared
	data []byte
	mask uint64
	cap  uint64
	tail uint64          // our index; the shared tail is a copy we publish
	head uint64          // cached consumer index; head <= shared head
	ctr  *stats.Counters // the Conn's: counts the wake syscalls made
	_    [64]byte        // keep the sender's and receiver's handles apart
}

// spscReader is the consumer's process-local handle.
type spscReader struct {
	sh     *spscShared
	data   []byte
	mask   uint64
	cap    uint64
	maxRec uint64          // largest whole-message record
	head   uint64          // our index
	tail   uint64          // cached producer index; tail <= shared tail
	ctr    *stats.Counters // the Conn's: counts the wake syscalls made
	_      [64]byte
}

// spscAt returns the ring whose header starts at mem[0] and whose data
// area is the cap bytes after it. mem must be 8-aligned and long enough.
func spscAt(mem []byte, cap int) (*spscShared, []byte) {
	sh := (*spscShared)(unsafe.Pointer(&mem[0]))
	return sh, mem[spscHeaderSize : spscHeaderSize+cap : spscHeaderSize+cap]
}

// spscInit resets the ring in mem. Nothing else may use it meanwhile.
func spscInit(mem []byte) {
	sh := (*spscShared)(unsafe.Pointer(&mem[0]))
	atomic.StoreUint64(&sh.tail, 0)
	atomic.StoreUint64(&sh.head, 0)
	atomic.StoreUint32(&sh.rwait, 0)
	atomic.StoreUint32(&sh.wwait, 0)
}

// spscLoad reads and validates both indices of a ring, for attaching.
func spscLoad(sh *spscShared, cap uint64) (head, tail uint64, err error) {
	head = atomic.LoadUint64(&sh.head)
	tail = atomic.LoadUint64(&sh.tail)
	if head%spscRecAlign != 0 || tail%spscRecAlign != 0 || tail-head > cap {
		return 0, 0, fmt.Errorf("ringbuf: pipe ring indices head %d tail %d (capacity %d): %w", head, tail, cap, shm.ErrCorrupt)
	}
	return head, tail, nil
}

func newSPSCWriter(mem []byte, cap int) (*spscWriter, error) {
	sh, data := spscAt(mem, cap)
	head, tail, err := spscLoad(sh, uint64(cap))
	if err != nil {
		return nil, err
	}
	return &spscWriter{sh: sh, data: data, mask: uint64(cap) - 1, cap: uint64(cap), tail: tail, head: head}, nil
}

func newSPSCReader(mem []byte, cap, maxRec int) (*spscReader, error) {
	sh, data := spscAt(mem, cap)
	head, tail, err := spscLoad(sh, uint64(cap))
	if err != nil {
		return nil, err
	}
	return &spscReader{sh: sh, data: data, mask: uint64(cap) - 1, cap: uint64(cap), maxRec: uint64(maxRec),
		head: head, tail: tail}, nil
}

func errCorruptIndex(what string, v, lo, hi uint64) error {
	return fmt.Errorf("ringbuf: pipe %s index %d outside [%d, %d]: %w", what, v, lo, hi, shm.ErrCorrupt)
}

// room reports whether a record of rec bytes fits, reloading the
// consumer's index when the cached one says it does not.
func (w *spscWriter) room(rec uint64) (bool, error) {
	if w.tail-w.head+rec <= w.cap {
		return true, nil
	}
	h := atomic.LoadUint64(&w.sh.head)
	// The consumer's index only grows and never passes ours.
	if h-w.head > w.tail-w.head || h%spscRecAlign != 0 {
		return false, errCorruptIndex("head", h, w.head, w.tail)
	}
	w.head = h
	return w.tail-h+rec <= w.cap, nil
}

// tryWrite appends msg if it fits and reports whether it did. The caller
// has checked len(msg) against the maximum message size.
func (w *spscWriter) tryWrite(msg []byte) (bool, error) {
	rec := spscSpan(w.tail, len(msg))
	if ok, err := w.room(rec); !ok {
		return false, err
	}
	off := w.tail & w.mask
	n := uint32(len(msg))
	*(*uint64)(unsafe.Pointer(&w.data[off])) = uint64(n) | uint64(^n)<<32
	off = (off + spscRecHeader + spscPad(w.tail, len(msg))) & w.mask
	if k := copy(w.data[off:], msg); k < len(msg) {
		copy(w.data, msg[k:]) // wrap around
	}
	w.tail += rec
	atomic.StoreUint64(&w.sh.tail, w.tail) // publishes the record
	if atomic.LoadUint32(&w.sh.rwait) != 0 {
		w.wakeReader()
	}
	return true, nil
}

func (w *spscWriter) wakeReader() {
	if atomic.SwapUint32(&w.sh.rwait, 0) != 0 {
		w.ctr.Wake()
		futex.WakeAll(&w.sh.rwait)
	}
}

// writePiece appends a piece of a long message: data, after the total
// length for a first piece. The caller has made sure of room for it
// (spscSpanMax of len(data), plus spscPieceTotal for a first piece).
func (w *spscWriter) writePiece(kind uint32, total uint64, data []byte) {
	n := len(data)
	if kind == spscPieceFirst {
		n += spscPieceTotal
	}
	h := uint32(n) | kind
	off := w.tail & w.mask
	*(*uint64)(unsafe.Pointer(&w.data[off])) = uint64(h) | uint64(^h)<<32
	off = (off + spscRecHeader + spscPad(w.tail, n)) & w.mask
	if kind == spscPieceFirst {
		*(*uint64)(unsafe.Pointer(&w.data[off])) = total // 8-aligned, so never split
		off = (off + spscPieceTotal) & w.mask
	}
	if k := copy(w.data[off:], data); k < len(data) {
		copy(w.data, data[k:]) // wrap around
	}
	w.tail += spscSpan(w.tail, n)
	atomic.StoreUint64(&w.sh.tail, w.tail) // publishes the piece
	if atomic.LoadUint32(&w.sh.rwait) != 0 {
		w.wakeReader()
	}
}

// next returns the header word h of the next record: the length of a
// whole message, or a piece's length with its kind bit (spscPieceKinds).
// It reloads the producer's index when the cached one says the ring is
// empty. ok is false when the ring is empty.
func (r *spscReader) next() (h uint32, ok bool, err error) {
	if r.head == r.tail {
		t := atomic.LoadUint64(&r.sh.tail)
		// The producer's index only grows and stays within cap of ours.
		if t-r.head > r.cap || t%spscRecAlign != 0 {
			return 0, false, errCorruptIndex("tail", t, r.head, r.head+r.cap)
		}
		r.tail = t
		if t == r.head {
			return 0, false, nil
		}
	}
	hdr := *(*uint64)(unsafe.Pointer(&r.data[r.head&r.mask]))
	h = uint32(hdr)
	if uint32(hdr>>32) != ^h {
		return 0, false, fmt.Errorf("ringbuf: pipe record header %#x at %d: %w", hdr, r.head, shm.ErrCorrupt)
	}
	n := h
	if uint64(h) > r.maxRec {
		if n, err = r.pieceLen(h); err != nil {
			return 0, false, err
		}
	}
	if rec := spscSpan(r.head, int(n)); rec > r.tail-r.head {
		return 0, false, fmt.Errorf("ringbuf: pipe record of %d bytes at %d exceeds the %d published: %w",
			n, r.head, r.tail-r.head, shm.ErrCorrupt)
	}
	return h, true, nil
}

// pieceLen returns the payload length of a piece's header word h, or an
// error when h is no valid piece (kept out of next, the fast path).
func (r *spscReader) pieceLen(h uint32) (uint32, error) {
	n := h &^ spscPieceKinds
	if k := h & spscPieceKinds; k == spscPieceKinds || k == 0 || uint64(n) > r.cap-spscRecHeader ||
		k == spscPieceFirst && n < spscPieceTotal {
		return 0, fmt.Errorf("ringbuf: pipe record header %#x at %d: %w", h, r.head, shm.ErrCorrupt)
	}
	return n, nil
}

// take copies the next record, of n bytes as next returned, into buf (at
// least n long) and frees its space.
func (r *spscReader) take(buf []byte, n int) {
	off := (r.head + spscRecHeader + spscPad(r.head, n)) & r.mask
	if k := copy(buf[:n], r.data[off:]); k < n {
		copy(buf[k:n], r.data) // wrap around
	}
	r.head += spscSpan(r.head, n)
	atomic.StoreUint64(&r.sh.head, r.head) // frees the record's bytes
	if atomic.LoadUint32(&r.sh.wwait) != 0 {
		r.wakeWriter()
	}
}

// pieceTotal returns the total length a first piece at head, of n payload
// bytes, carries.
func (r *spscReader) pieceTotal(n int) uint64 {
	return *(*uint64)(unsafe.Pointer(&r.data[(r.head+spscRecHeader+spscPad(r.head, n))&r.mask])) // 8-aligned, never split
}

// takePiece copies the payload bytes [skip, n) of the record at head, of n
// payload bytes, into dst (len n-skip; nil drops them) and frees its space.
func (r *spscReader) takePiece(dst []byte, skip, n int) {
	if dst != nil {
		off := (r.head + spscRecHeader + spscPad(r.head, n) + uint64(skip)) & r.mask
		if k := copy(dst[:n-skip], r.data[off:]); k < n-skip {
			copy(dst[k:n-skip], r.data) // wrap around
		}
	}
	r.head += spscSpan(r.head, n)
	atomic.StoreUint64(&r.sh.head, r.head) // frees the record's bytes
	if atomic.LoadUint32(&r.sh.wwait) != 0 {
		r.wakeWriter()
	}
}

func (r *spscReader) wakeWriter() {
	if atomic.SwapUint32(&r.sh.wwait, 0) != 0 {
		r.ctr.Wake()
		futex.WakeAll(&r.sh.wwait)
	}
}

// tryRead copies the next record, a whole message, into buf. It returns ok
// false when the ring is empty or the next record is a piece (err nil
// both), and the record's length with ErrShortBuffer, leaving it in the
// ring, when buf is too small.
func (r *spscReader) tryRead(buf []byte) (n int, ok bool, err error) {
	h, ok, err := r.next()
	if !ok || h&spscPieceKinds != 0 {
		return 0, false, err
	}
	n = int(h)
	if n > len(buf) {
		return n, false, ErrShortBuffer
	}
	r.take(buf, n)
	return n, true, nil
}
