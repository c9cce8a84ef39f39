//go:build linux

package ringbuf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/shm"
)

// qNew makes an in-process queue in ordinary (64-byte aligned) memory.
func qNew(tb testing.TB, capacity, maxMsg int, opts *Options) *Queue {
	tb.Helper()
	mem := qAligned(SizeOf(capacity, maxMsg))
	q, err := Init(mem, capacity, maxMsg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func qAligned(n int) []byte {
	b := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	return b[off : off+n : off+n]
}

func TestQueueLayout(t *testing.T) {
	// Header words written by different parties own their cache lines.
	offs := []struct {
		name string
		off  int
	}{{"params", qOffMagic}, {"tail", qOffTail}, {"head", qOffHead}, {"notEmpty", qOffNotEmpty}, {"notFull", qOffNotFull}, {"join", qOffJoinEpoch}}
	for i, o := range offs {
		if o.off%64 != 0 {
			t.Errorf("%s at %d: not on a cache line boundary", o.name, o.off)
		}
		if i > 0 && o.off-offs[i-1].off < 64 {
			t.Errorf("%s at %d shares a cache line with %s", o.name, o.off, offs[i-1].name)
		}
	}
	if qOffShutdown >= 64 || qOffFingerprint+8 > 64 {
		t.Errorf("read-mostly parameters spill out of line 0")
	}
	if qOffJoinWaiters/64 != qOffJoinEpoch/64 || qOffJoinLoose/64 != qOffJoinEpoch/64 || qHeaderSize%64 != 0 || qHeaderSize < qOffJoinWaiters+4 {
		t.Errorf("header size %d", qHeaderSize)
	}
	if unsafe.Sizeof(qEvent{}) != 8 {
		t.Errorf("qEvent is %d bytes", unsafe.Sizeof(qEvent{}))
	}
	for _, c := range []struct{ cap, max, want int }{
		{1024, 64, 384 + 1024*128}, {256, 4096, 384 + 256*4160}, {2, 0, 384 + 2*64}, {2, 1, 384 + 2*128}, {2, 64, 384 + 2*128}, {2, 65, 384 + 2*192},
		{1, 0, 384 + 2*64}, {6, 64, 384 + 8*128}, {1000, 0, 384 + 1024*64}, {0, 0, 384 + DefaultCapacity*64}, {-5, 0, 384 + DefaultCapacity*64},
	} {
		if got := SizeOf(c.cap, c.max); got != c.want {
			t.Errorf("SizeOf(%d, %d) = %d, want %d", c.cap, c.max, got, c.want)
		}
	}
	// Slots start on a cache line and each is a whole number of lines;
	// the payload starts on the line after the slot word.
	if qStride(64)%64 != 0 || qHeaderSize%64 != 0 || qSlotHeader != 64 {
		t.Error("slots or payload not cache-line aligned")
	}
}

func TestQueueInvalidParams(t *testing.T) {
	for _, c := range []struct{ cap, max int }{{MaxCapacity + 1, 8}, {MaxCapacity * 2, 8}, {4, -1}, {4, MaxMsgLimit + 1}} {
		if SizeOf(c.cap, c.max) != -1 {
			t.Errorf("SizeOf(%d, %d) accepted", c.cap, c.max)
		}
		if _, err := Init(qAligned(4096), c.cap, c.max, nil); !errors.Is(err, ErrInvalidParam) {
			t.Errorf("Init(%d, %d): %v, want ErrInvalidParam", c.cap, c.max, err)
		}
	}
	if _, err := Init(qAligned(100), 4, 8, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init in short memory: %v", err)
	}
	b := qAligned(SizeOf(4, 8) + 8)
	if _, err := Init(b[1:], 4, 8, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init in unaligned memory: %v", err)
	}
}

func TestQueueFIFOAndTry(t *testing.T) {
	q := qNew(t, 4, 16, nil)
	if !q.Empty() || q.Full() || q.Len() != 0 || q.Cap() != 4 || q.MaxMsgSize() != 16 {
		t.Fatalf("new queue: empty %v full %v len %d cap %d max %d", q.Empty(), q.Full(), q.Len(), q.Cap(), q.MaxMsgSize())
	}
	if _, err := q.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet on empty: %v", err)
	}
	for lap := 0; lap < 5; lap++ {
		for i := 0; i < 4; i++ {
			if err := q.TryPut([]byte(fmt.Sprint(lap, i))); err != nil {
				t.Fatal(err)
			}
		}
		if !q.Full() || q.Len() != 4 {
			t.Fatalf("full queue: full %v len %d", q.Full(), q.Len())
		}
		if err := q.TryPut([]byte("x")); !errors.Is(err, ErrFull) {
			t.Fatalf("TryPut on full: %v", err)
		}
		if err := q.PutTimeout([]byte("x"), 20*time.Millisecond); !errors.Is(err, ErrFull) {
			t.Fatalf("PutTimeout on full: %v", err)
		}
		for i := 0; i < 4; i++ {
			m, err := q.TryGet()
			if err != nil || string(m) != fmt.Sprint(lap, i) {
				t.Fatalf("got %q, %v; want %q", m, err, fmt.Sprint(lap, i))
			}
		}
		if _, err := q.GetTimeout(20 * time.Millisecond); !errors.Is(err, ErrEmpty) {
			t.Fatalf("GetTimeout on empty: %v", err)
		}
	}
	// Empty messages and messages of exactly the maximum size.
	if err := q.TryPut(nil); err != nil {
		t.Fatal(err)
	}
	full := bytes.Repeat([]byte{7}, 16)
	if err := q.TryPut(full); err != nil {
		t.Fatal(err)
	}
	if m, err := q.TryGet(); err != nil || len(m) != 0 {
		t.Fatalf("empty message: %q %v", m, err)
	}
	if m, err := q.TryGet(); err != nil || !bytes.Equal(m, full) {
		t.Fatalf("max message: %q %v", m, err)
	}
}

// TestQueueStaleHints: head and tail are hints that a preempted claimant
// may set back by any number of laps. Set back further than the attempt
// budget could walk position by position, they must cost a scan, never a
// wrong answer or ErrCorrupt.
func TestQueueStaleHints(t *testing.T) {
	q := qNew(t, 8, 16, nil)
	laps := q.budget/8 + 10
	for i := 0; i < laps*8+3; i++ {
		if err := q.TryPut([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := q.TryGet(); err != nil {
			t.Fatal(err)
		}
	}
	for _, back := range []uint64{1, 7, 8, 9, 8*uint64(laps) + 3} {
		// Five messages in; then both hints far behind.
		for i := range 5 {
			if err := q.TryPut([]byte{byte(i)}); err != nil {
				t.Fatalf("back %d: put %d: %v", back, i, err)
			}
		}
		h, tl := atomic.LoadUint64(q.head), atomic.LoadUint64(q.tail)
		atomic.StoreUint64(q.head, h-min(back, h))
		atomic.StoreUint64(q.tail, tl-min(back, tl))
		if q.Len() != 5 || q.Empty() || q.Full() {
			t.Fatalf("back %d: len %d empty %v full %v", back, q.Len(), q.Empty(), q.Full())
		}
		for i := 5; i < 8; i++ {
			if err := q.TryPut([]byte{byte(i)}); err != nil {
				t.Fatalf("back %d: put %d: %v", back, i, err)
			}
		}
		atomic.StoreUint64(q.tail, tl-min(back, tl))
		if !q.Full() {
			t.Fatalf("back %d: not full", back)
		}
		if err := q.TryPut([]byte("x")); !errors.Is(err, ErrFull) {
			t.Fatalf("back %d: TryPut on full: %v", back, err)
		}
		atomic.StoreUint64(q.head, h-min(back, h))
		for i := range 8 {
			if m, err := q.TryGet(); err != nil || len(m) != 1 || m[0] != byte(i) {
				t.Fatalf("back %d: get %d: %v %v", back, i, m, err)
			}
		}
		atomic.StoreUint64(q.head, h-min(back, h))
		if _, err := q.TryGet(); !errors.Is(err, ErrEmpty) || !q.Empty() {
			t.Fatalf("back %d: TryGet on empty: %v", back, err)
		}
	}
}

func TestQueueTooLargeAndShortBuffer(t *testing.T) {
	q := qNew(t, 4, 8, nil)
	for _, put := range []func([]byte) error{
		q.TryPut, func(m []byte) error { return q.Put(context.Background(), m) }, func(m []byte) error { return q.PutTimeout(m, time.Second) },
	} {
		if err := put(make([]byte, 9)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("9 bytes into max 8: %v", err)
		}
	}
	if _, err := q.TryReserve(9); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Reserve 9: %v", err)
	}
	q.TryPut([]byte("12345678"))
	var small [4]byte
	n, err := q.TryGetInto(small[:])
	if !errors.Is(err, ErrShortBuffer) || n != 8 {
		t.Fatalf("GetInto short buffer: %d %v", n, err)
	}
	if q.Len() != 1 {
		t.Fatal("short buffer removed the message")
	}
	var big [8]byte
	if n, err := q.GetInto(context.Background(), big[:]); err != nil || string(big[:n]) != "12345678" {
		t.Fatalf("GetInto: %q %v", big[:n], err)
	}
}

// TestQueueShutdown: after Shutdown, Puts fail and Gets drain then fail,
// through every handle; Close of one handle leaves the others working.
func TestQueueShutdown(t *testing.T) {
	mem := qAligned(SizeOf(4, 8))
	q, err := Init(mem, 4, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Attach(mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.TryPut([]byte("a"))
	q.TryPut([]byte("b"))
	if err := q.Shutdown(false); err != nil {
		t.Fatal(err)
	}
	if err := q.Shutdown(false); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if !q.IsShutdown() || !other.IsShutdown() || !other.State().Shutdown || q.Closed() {
		t.Fatal("not shut down, or closed")
	}
	for _, h := range []*Queue{q, other} {
		if err := h.TryPut([]byte("c")); !errors.Is(err, ErrShutdown) {
			t.Fatalf("TryPut after Shutdown: %v", err)
		}
		if err := h.Put(context.Background(), []byte("c")); !errors.Is(err, ErrShutdown) {
			t.Fatalf("Put after Shutdown: %v", err)
		}
		if _, err := h.Reserve(context.Background(), 1); !errors.Is(err, ErrShutdown) {
			t.Fatalf("Reserve after Shutdown: %v", err)
		}
	}
	if m, err := q.Get(context.Background()); err != nil || string(m) != "a" {
		t.Fatalf("drain: %q %v", m, err)
	}
	if m, err := other.Get(context.Background()); err != nil || string(m) != "b" {
		t.Fatalf("drain: %q %v", m, err)
	}
	for _, h := range []*Queue{q, other} {
		if _, err := h.Get(context.Background()); !errors.Is(err, ErrShutdown) {
			t.Fatalf("Get on drained shut-down queue: %v", err)
		}
		if _, err := h.TryGet(); !errors.Is(err, ErrShutdown) {
			t.Fatalf("TryGet on drained shut-down queue: %v", err)
		}
	}
	// Restart: usable again, through every handle.
	if err := other.Restart(); err != nil {
		t.Fatal(err)
	}
	if q.IsShutdown() {
		t.Fatal("still shut down after Restart")
	}
	if err := q.TryPut([]byte("d")); err != nil {
		t.Fatalf("Put after Restart: %v", err)
	}
	if m, err := other.TryGet(); err != nil || string(m) != "d" {
		t.Fatalf("Get after Restart: %q %v", m, err)
	}
	// Close releases one handle only.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !q.Closed() || !q.State().Closed || other.Closed() || q.IsShutdown() {
		t.Fatal("Close did more or less than close the handle")
	}
	if err := q.TryPut([]byte("e")); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryPut on a closed handle: %v", err)
	}
	if _, err := q.Reserve(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reserve on a closed handle: %v", err)
	}
	if err := other.TryPut([]byte("f")); err != nil {
		t.Fatalf("TryPut on the other handle: %v", err)
	}
	if _, err := q.TryGet(); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryGet on a closed handle with a message queued: %v", err)
	}
	if _, err := q.Borrow(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Borrow on a closed handle: %v", err)
	}
	if err := q.Shutdown(false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Shutdown on a closed handle: %v", err)
	}
	if err := q.Restart(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restart on a closed handle: %v", err)
	}
	if m, err := other.TryGet(); err != nil || string(m) != "f" {
		t.Fatalf("TryGet on the other handle: %q %v", m, err)
	}
}

// TestQueueShutdownImmediate: an immediate Shutdown discards what is
// left; Gets fail at once; a JoinableQueue's Join returns, the discarded
// tasks counting as done.
func TestQueueShutdownImmediate(t *testing.T) {
	jq, err := InitJoinable(qAligned(SizeOfJoinable(6, 8)), 6, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := jq.TryPut([]byte("t")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := jq.TryGet(); err != nil { // one task taken, not done
		t.Fatal(err)
	}
	if err := jq.Shutdown(true); err != nil {
		t.Fatal(err)
	}
	if n := jq.Len(); n != 0 {
		t.Fatalf("Len after an immediate Shutdown: %d", n)
	}
	if _, err := jq.TryGet(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("TryGet after an immediate Shutdown: %v", err)
	}
	if ok, _ := jq.TryJoin(); ok {
		t.Fatal("Join done with a taken task not done")
	}
	if n := jq.Unfinished(); n != 1 {
		t.Fatalf("Unfinished %d, want the one taken task", n)
	}
	if err := jq.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if ok, err := jq.JoinTimeout(5 * time.Second); !ok || err != nil {
		t.Fatalf("Join after an immediate Shutdown: %v %v", ok, err)
	}
	// A plain Shutdown upgraded to immediate discards.
	q := qNew(t, 3, 8, nil)
	q.TryPut([]byte("x"))
	q.Shutdown(false)
	q.Shutdown(true)
	if _, err := q.TryGet(); !errors.Is(err, ErrShutdown) || q.Len() != 0 {
		t.Fatalf("after Shutdown(false), Shutdown(true): %v, Len %d", err, q.Len())
	}
	// A commit that lands after the immediate Shutdown (its producer
	// claimed before) is discarded by the next Get.
	q2 := qNew(t, 3, 8, nil)
	r, err := q2.TryReserve(1)
	if err != nil {
		t.Fatal(err)
	}
	q2.Shutdown(true)
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := q2.TryGet(); !errors.Is(err, ErrShutdown) || q2.Len() != 0 {
		t.Fatalf("a late commit after an immediate Shutdown: %v, Len %d", err, q2.Len())
	}
}

func TestQueueShutdownWakesInProcess(t *testing.T) {
	q := qNew(t, 2, 8, nil)
	full := qNew(t, 2, 8, nil)
	full.TryPut(nil)
	full.TryPut(nil)
	errs := make(chan error, 2)
	go func() { _, err := q.Get(context.Background()); errs <- err }()
	go func() { errs <- full.Put(context.Background(), []byte("x")) }()
	time.Sleep(50 * time.Millisecond)
	q.Shutdown(false)
	full.Shutdown(false)
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrShutdown) {
				t.Fatalf("blocked call after Shutdown: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown did not wake a blocked call")
		}
	}
}

// TestQueueCloseWakesInProcess: Close wakes this handle's blocked calls
// with ErrClosed.
func TestQueueCloseWakesInProcess(t *testing.T) {
	q := qNew(t, 2, 8, nil)
	full := qNew(t, 2, 8, nil)
	full.TryPut(nil)
	full.TryPut(nil)
	errs := make(chan error, 2)
	go func() { _, err := q.Get(context.Background()); errs <- err }()
	go func() { errs <- full.Put(context.Background(), []byte("x")) }()
	time.Sleep(50 * time.Millisecond)
	q.Close()
	full.Close()
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked call after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a blocked call")
		}
	}
}

func TestQueueContext(t *testing.T) {
	q := qNew(t, 2, 8, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := q.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with expiring ctx: %v", err)
	}
	q.TryPut(nil)
	q.TryPut(nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel2() }()
	if err := q.Put(ctx2, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	if q.Len() != 2 {
		t.Fatalf("cancelled Put changed the queue: len %d", q.Len())
	}
	st := q.State()
	if st.GetWaiters != 0 || st.PutWaiters != 0 {
		t.Fatalf("waiters left registered: %+v", st)
	}
}

func TestQueueBlockingHandoff(t *testing.T) {
	q := qNew(t, 2, 8, nil)
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(i))
			if err := q.Put(context.Background(), b[:]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf [8]byte
	for i := 0; i < n; i++ {
		if _, err := q.GetInto(context.Background(), buf[:]); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint64(buf[:]); got != uint64(i) {
			t.Fatalf("got %d, want %d", got, i)
		}
	}
	wg.Wait()
}

// TestQueueConservationGoroutines is the in-process hammer (rigtorp's
// test): producers' sum equals consumers' sum, every message once, each
// producer's order preserved.
func TestQueueConservationGoroutines(t *testing.T) {
	const producers, consumers = 4, 4
	per := 50000
	if testing.Short() {
		per = 5000
	}
	q := qNew(t, 8, 16, nil)
	var wg sync.WaitGroup
	var sum, count atomic.Uint64
	seen := make([]atomic.Uint32, producers*per)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [16]byte
			for i := 0; i < per; i++ {
				binary.LittleEndian.PutUint64(b[:], uint64(p))
				binary.LittleEndian.PutUint64(b[8:], uint64(i))
				if err := q.Put(context.Background(), b[:]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var cwg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			last := make([]int64, producers)
			for i := range last {
				last[i] = -1
			}
			var b [16]byte
			for {
				n, err := q.GetInto(context.Background(), b[:])
				if errors.Is(err, ErrShutdown) {
					return
				}
				if err != nil || n != 16 {
					t.Error(n, err)
					return
				}
				p, i := binary.LittleEndian.Uint64(b[:]), int64(binary.LittleEndian.Uint64(b[8:]))
				if i <= last[p] {
					t.Errorf("producer %d: %d after %d", p, i, last[p])
				}
				last[p] = i
				if seen[int(p)*per+int(i)].Add(1) != 1 {
					t.Errorf("message %d/%d twice", p, i)
				}
				sum.Add(uint64(i))
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	q.Shutdown(false)
	cwg.Wait()
	if count.Load() != uint64(producers*per) || sum.Load() != uint64(producers)*uint64(per)*uint64(per-1)/2 {
		t.Fatalf("count %d sum %d", count.Load(), sum.Load())
	}
}

func TestQueueZeroCopy(t *testing.T) {
	q := qNew(t, 4, 32, nil)
	r, err := q.Reserve(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Bytes(), "hello")
	if q.Empty() != true {
		// A reserved slot is not a message yet.
		t.Fatal("reserved slot visible as a message")
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); !errors.Is(err, errSpent) {
		t.Fatalf("second Commit: %v", err)
	}
	r2, _ := q.TryReserve(3)
	copy(r2.Bytes(), "xyz")
	if err := r2.Cancel(); err != nil {
		t.Fatal(err)
	}
	q.TryPut([]byte("world"))
	b, err := q.Borrow(context.Background())
	if err != nil || string(b.Bytes()) != "hello" {
		t.Fatalf("Borrow: %q %v", b.Bytes(), err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(); !errors.Is(err, errSpent) {
		t.Fatalf("second Release: %v", err)
	}
	// The cancelled reservation is skipped.
	b2, err := q.TryBorrow()
	if err != nil || string(b2.Bytes()) != "world" {
		t.Fatalf("after cancel: %q %v", b2.Bytes(), err)
	}
	b2.Release()
	if _, err := q.BorrowTimeout(10 * time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("BorrowTimeout on empty: %v", err)
	}
	for range 4 {
		q.TryPut(nil)
	}
	if _, err := q.ReserveTimeout(1, 10*time.Millisecond); !errors.Is(err, ErrFull) {
		t.Fatalf("ReserveTimeout on full: %v", err)
	}
}

func TestQueueNoAllocs(t *testing.T) {
	q := qNew(t, 8, 64, nil)
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		q.TryPut(msg)
		q.TryGetInto(buf)
		q.Put(context.Background(), msg)
		q.GetInto(context.Background(), buf)
		r, _ := q.TryReserve(10)
		r.Commit()
		b, _ := q.TryBorrow()
		b.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per Put/Get round", allocs)
	}
}

func TestQueueAttach(t *testing.T) {
	mem := qAligned(SizeOf(8, 16))
	q, _ := Init(mem, 8, 16, nil)
	q.TryPut([]byte("shared"))
	q2, err := Attach(mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := q2.TryGet(); err != nil || string(m) != "shared" {
		t.Fatalf("via Attach: %q %v", m, err)
	}
	if _, err := AttachJoinable(mem, nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("AttachJoinable on a plain queue: %v", err)
	}
}

// TestQueueAttachCorrupt: one test per header corruption, each must give
// shm.ErrCorrupt.
func TestQueueAttachCorrupt(t *testing.T) {
	cases := []struct {
		name string
		off  int
		val  uint32
	}{
		{"magic", qOffMagic, 0xdeadbeef},
		{"version", qOffVersion, 99},
		{"capacity not a power of two", qOffCap, 6},
		{"capacity 1", qOffCap, 1},
		{"ring larger than the limit needs", qOffCap, 16},
		{"limit 0", qOffLimit, 0},
		{"limit above the ring", qOffLimit, 9},
		{"capacity beyond memory", qOffCap, 1 << 20},
		{"max message beyond memory", qOffMaxMsg, 1 << 20},
		{"stride", qOffStride, 8},
		{"flags", qOffFlags, 0x80},
	}
	for _, c := range cases {
		mem := qAligned(SizeOf(8, 16))
		Init(mem, 8, 16, nil)
		*u32at(mem, c.off) = c.val
		if _, err := Attach(mem, nil); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", c.name, err)
		}
	}
	if _, err := Attach(qAligned(100), nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("short memory: %v", err)
	}
}

// TestQueueCorruptSlot: garbage slot words and lengths give ErrCorrupt,
// never a panic or a hang.
func TestQueueCorruptSlot(t *testing.T) {
	cases := []struct {
		name string
		mod  func(q *Queue)
	}{
		{"sequence from nowhere", func(q *Queue) { atomic.StoreUint64(qSlotWord(q.slot(0)), qWord(12345, 0)) }},
		{"length beyond max", func(q *Queue) {
			atomic.StoreUint64(qSlotWord(q.slot(0)), qWord(1, qClaimFull|1000))
		}},
		{"full-phase claim with free-phase sequence", func(q *Queue) {
			atomic.StoreUint64(qSlotWord(q.slot(0)), qWord(0, qClaimFull|3))
		}},
		{"claim with no registry slot", func(q *Queue) {
			atomic.StoreUint64(qSlotWord(q.slot(0)), qWord(1, 1<<qClaimGenShift))
		}},
	}
	for _, c := range cases {
		q := qNew(t, 8, 16, nil)
		c.mod(q)
		if _, err := q.TryGet(); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("%s: TryGet %v, want ErrCorrupt", c.name, err)
		}
	}
	// A producer meets a slot a lap behind that was never claimed.
	q := qNew(t, 8, 16, nil)
	atomic.StoreUint64(q.tail, 8)
	atomic.StoreUint64(q.head, 8)
	if err := q.TryPut([]byte("x")); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("tail a lap ahead: TryPut %v, want ErrCorrupt", err)
	}
	// Every slot says "a later lap", each a quarter of the 32-bit sequence
	// space beyond the one before, so that a scan jumping from slot to
	// slot never meets the frontier: it gives up after its budget.
	q = qNew(t, 8, 16, nil)
	for i := 0; i < 8; i++ {
		atomic.StoreUint64(qSlotWord(q.slot(uint64(i))), qWord(uint32(i)+uint32(i+1)<<29, 0))
	}
	q.budget = 1000
	if err := q.TryPut([]byte("x")); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("endless later laps: TryPut %v, want ErrCorrupt", err)
	}
	if _, err := q.TryGet(); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("endless later laps: TryGet %v, want ErrCorrupt", err)
	}
}

func TestQueueTyped(t *testing.T) {
	type point struct {
		X, Y int32
		Z    float64
	}
	mem := qAligned(SizeOfTyped[point](4))
	q, err := InitTyped[point](mem, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Put(context.Background(), point{1, 2, 3.5}); err != nil {
		t.Fatal(err)
	}
	q.TryPut(point{4, 5, 6})
	q2, err := AttachTyped[point](mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := q2.Get(context.Background()); err != nil || v != (point{1, 2, 3.5}) {
		t.Fatalf("typed Get: %v %v", v, err)
	}
	if v, err := q2.TryGet(); err != nil || v != (point{4, 5, 6}) {
		t.Fatalf("typed TryGet: %v %v", v, err)
	}
	if _, err := q2.GetTimeout(5 * time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("typed GetTimeout: %v", err)
	}
	if _, err := AttachTyped[[16]byte](mem, nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("AttachTyped with another type: %v", err)
	}
	if _, err := AttachTyped[point](qNew(t, 4, 16, nil).mem, nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("AttachTyped on a byte queue: %v", err)
	}
	if _, err := InitTyped[*int](qAligned(4096), 4, nil); err == nil {
		t.Fatal("InitTyped accepted a pointer type")
	}
	allocs := testing.AllocsPerRun(100, func() {
		q.TryPut(point{1, 1, 1})
		q.TryGet()
	})
	if allocs != 0 {
		t.Fatalf("typed Put/Get: %v allocs", allocs)
	}
}

func TestJoinableInProcess(t *testing.T) {
	mem := qAligned(SizeOfJoinable(8, 8))
	j, err := InitJoinable(mem, 8, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := j.TryJoin(); !ok {
		t.Fatal("empty joinable queue not joined")
	}
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("TaskDone with nothing taken: %v", err)
	}
	j.TryPut([]byte("a"))
	j.TryPut([]byte("b"))
	// Put but not taken: TaskDone is still an error (nothing taken).
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("TaskDone before any Get: %v", err)
	}
	if j.Unfinished() != 2 {
		t.Fatalf("unfinished %d", j.Unfinished())
	}
	if ok, _ := j.JoinTimeout(20 * time.Millisecond); ok {
		t.Fatal("joined with unfinished tasks")
	}
	j.TryGet()
	j.TryGet()
	done := make(chan error, 1)
	go func() { done <- j.Join(context.Background()) }()
	if err := j.TaskDone(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("Join returned before the last TaskDone")
	case <-time.After(30 * time.Millisecond):
	}
	j.TaskDone()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after the last TaskDone")
	}
	st := j.State()
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("extra TaskDone: %v", err)
	}
	if j.State() != st {
		t.Fatalf("failed TaskDone changed state: %+v -> %+v", st, j.State())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	j.TryPut(nil)
	if err := j.Join(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join with ctx: %v", err)
	}
}

// testRegistry returns the process registry of a fresh anonymous segment,
// for queues placed in memory of their own.
func testRegistry(tb testing.TB) *shm.Registry {
	tb.Helper()
	seg, err := shm.CreateAnonymous(0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { seg.Close() })
	return seg.Registry()
}

// TestQueueReclaimByRegistry: a claim is judged by the process registry.
// A claim whose owner record was never written is judged by the claim's
// own slot and 14 generation bits: a slot never claimed, or claimed again
// since (another generation), holds a dead claimant, and the slot is
// reclaimed; this process's own claim is alive.
func TestQueueReclaimByRegistry(t *testing.T) {
	reg := testRegistry(t)
	q := qNew(t, 4, 8, &Options{CheckInterval: 10 * time.Millisecond, Registry: reg})
	self := reg.Self()
	if !q.claimantAlive(qClaimOf(self), 0) || !q.claimantAlive(qClaimOf(self), self.Pack()) {
		t.Error("own claim judged dead")
	}
	never := proc.ID{Slot: uint32(reg.Slots()), Gen: 1}
	reclaimed := proc.ID{Slot: self.Slot, Gen: self.Gen + 1}
	for _, id := range []proc.ID{never, reclaimed} {
		if q.claimantAlive(qClaimOf(id), 0) || q.claimantAlive(qClaimOf(id), id.Pack()) {
			t.Errorf("claim of %+v judged alive", id)
		}
	}
	// Without a registry nothing can be proven dead.
	qb := qNew(t, 4, 8, nil)
	if !qb.claimantAlive(qClaimOf(never), 0) {
		t.Error("a queue without a registry judged a claim dead")
	}

	// End to end: a producer claim by a dead process blocks position 0; a
	// getter reclaims it after the check interval and gets the message
	// behind it.
	for _, id := range []proc.ID{never, reclaimed} {
		q := qNew(t, 4, 8, &Options{CheckInterval: 10 * time.Millisecond, Registry: reg})
		atomic.StoreUint64(qSlotWord(q.slot(0)), qWord(0, qClaimOf(id)))
		atomic.StoreUint64(q.tail, 1)
		if err := q.TryPut([]byte("behind")); err != nil {
			t.Fatal(err)
		}
		m, err := q.GetTimeout(5 * time.Second)
		if err != nil || string(m) != "behind" {
			t.Errorf("%+v: got %q, %v; want the message behind the dead claim", id, m, err)
		}
	}
}

// TestQueueTakeLostRace: an optimistic Get found a message and copied it,
// but another consumer took it first (and a producer refilled the slot on
// the next lap): the take must fail, leaving the queue as the winner left
// it, never deliver the message twice or free the refilled slot.
func TestQueueTakeLostRace(t *testing.T) {
	q := qNew(t, 2, 8, nil)
	q.TryPut([]byte("one"))
	s, pos, n, st, w := q.claimGet(-1, false)
	if st != qOK || n != 3 || pos != 0 {
		t.Fatalf("peek: st %d n %d pos %d", st, n, pos)
	}
	if m, err := q.TryGet(); err != nil || string(m) != "one" {
		t.Fatalf("winner: %q %v", m, err)
	}
	q.TryPut([]byte("two"))
	q.TryPut([]byte("three")) // lands in the slot the loser peeked at
	if q.takeGet(s, pos, w) {
		t.Fatal("take succeeded after another consumer took the message")
	}
	for _, want := range []string{"two", "three"} {
		if m, err := q.TryGet(); err != nil || string(m) != want {
			t.Fatalf("after the lost race: %q %v, want %q", m, err, want)
		}
	}
	if _, err := q.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("queue not empty: %v", err)
	}
}
