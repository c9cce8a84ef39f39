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
// A record is an 8-byte header, the low half the payload length n and the
// high half ^n (a cheap check against garbage), followed by n payload bytes,
// padded to a multiple of 8. A payload that reaches the end of the data area
// continues at its start: records are never split in their header (the
// header is 8-aligned) and never padded to the end of the ring.
//
// Each side keeps its own index in process memory and only ever stores it
// to the shared word, never reads it back, so a peer that scribbles on our
// index cannot move us. The peer's index is read only when the cached copy
// says the ring is full (producer) or empty (consumer), and it is validated
// before use: it must lie between our cached copy and our own index, and be
// 8-aligned; a record header must carry ^n, n <= max message size, and fit
// in the published bytes. Anything else is shm.ErrCorrupt.
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
)

// spscRecSize is the ring space one record of n payload bytes takes.
func spscRecSize(n int) uint64 {
	return (uint64(n) + spscRecHeader + spscRecAlign - 1) &^ (spscRecAlign - 1)
}

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
	maxMsg uint64
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

func newSPSCReader(mem []byte, cap, maxMsg int) (*spscReader, error) {
	sh, data := spscAt(mem, cap)
	head, tail, err := spscLoad(sh, uint64(cap))
	if err != nil {
		return nil, err
	}
	return &spscReader{sh: sh, data: data, mask: uint64(cap) - 1, cap: uint64(cap), maxMsg: uint64(maxMsg),
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
	rec := spscRecSize(len(msg))
	if ok, err := w.room(rec); !ok {
		return false, err
	}
	off := w.tail & w.mask
	n := uint32(len(msg))
	*(*uint64)(unsafe.Pointer(&w.data[off])) = uint64(n) | uint64(^n)<<32
	off = (off + spscRecHeader) & w.mask
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

// next returns the length of the next record, reloading the producer's
// index when the cached one says the ring is empty. ok is false when the
// ring is empty.
func (r *spscReader) next() (n int, ok bool, err error) {
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
	ln := uint32(hdr)
	if uint32(hdr>>32) != ^ln || uint64(ln) > r.maxMsg {
		return 0, false, fmt.Errorf("ringbuf: pipe record header %#x at %d: %w", hdr, r.head, shm.ErrCorrupt)
	}
	if rec := spscRecSize(int(ln)); rec > r.tail-r.head {
		return 0, false, fmt.Errorf("ringbuf: pipe record of %d bytes at %d exceeds the %d published: %w",
			ln, r.head, r.tail-r.head, shm.ErrCorrupt)
	}
	return int(ln), true, nil
}

// take copies the next record, of n bytes as next returned, into buf (at
// least n long) and frees its space.
func (r *spscReader) take(buf []byte, n int) {
	off := (r.head + spscRecHeader) & r.mask
	if k := copy(buf[:n], r.data[off:]); k < n {
		copy(buf[k:n], r.data) // wrap around
	}
	r.head += spscRecSize(n)
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

// tryRead copies the next record into buf. It returns ok false when the
// ring is empty, and the record's length with ErrShortBuffer, leaving it in
// the ring, when buf is too small.
func (r *spscReader) tryRead(buf []byte) (n int, ok bool, err error) {
	n, ok, err = r.next()
	if !ok {
		return 0, false, err
	}
	if n > len(buf) {
		return n, false, ErrShortBuffer
	}
	r.take(buf, n)
	return n, true, nil
}
