//go:build linux

package ringbuf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	roles["pipe-large-send"] = pipeRoleLargeSend
	roles["pipe-large-one"] = pipeRoleLargeOne
}

// Checksummed messages for pieces: sender s's message seq has its id
// (s<<48 | seq) in the first 8 bytes, bytes from a generator seeded by the
// id, and the SHA-256 of everything before it in the last 32 bytes.

const pipeSumMin = 8 + sha256.Size

func pipeSumMsg(buf []byte, sender, seq uint64, n int) []byte {
	b := buf[:n]
	id := sender<<48 | seq
	binary.LittleEndian.PutUint64(b, id)
	g := rand.NewPCG(id, 0x5eed)
	body := b[8 : n-sha256.Size]
	for len(body) >= 8 {
		binary.LittleEndian.PutUint64(body, g.Uint64())
		body = body[8:]
	}
	for i := range body {
		body[i] = byte(g.Uint64())
	}
	sum := sha256.Sum256(b[:n-sha256.Size])
	copy(b[n-sha256.Size:], sum[:])
	return b
}

// pipeSumCheck returns the sender and sequence number of a well-formed
// message.
func pipeSumCheck(b []byte) (sender, seq uint64, err error) {
	if len(b) < pipeSumMin {
		return 0, 0, fmt.Errorf("message of %d bytes", len(b))
	}
	id := binary.LittleEndian.Uint64(b)
	if sum := sha256.Sum256(b[:len(b)-sha256.Size]); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		return id >> 48, id & (1<<48 - 1), fmt.Errorf("message %#x of %d bytes: checksum mismatch", id, len(b))
	}
	return id >> 48, id & (1<<48 - 1), nil
}

// pipeSumSize is the size of sender s's message seq: mostly small, one in
// four longer than a ring of capa bytes (in pieces), up to big.
func pipeSumSize(sender, seq uint64, capa, big int) int {
	m := pipeMix(sender<<48 | seq)
	if m%4 == 0 {
		return capa + int((m>>8)%uint64(big-capa))
	}
	return pipeSumMin + int((m>>8)%300)
}

// pipeSendMixed sends count checksummed messages from each of senders
// goroutines on c, sender 0's message count/2 being huge bytes long, and
// returns the first error. The goroutines take turns with a mutex around
// each Send, as the Conn's contract asks of goroutines sharing an end; the
// pieces of each message must come out together.
func pipeSendMixed(c *Conn, senders, count, capa, big, huge int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, senders)
	for s := range uint64(senders) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(big, huge))
			for seq := range uint64(count) {
				n := pipeSumSize(s, seq, capa, big)
				if s == 0 && seq == uint64(count/2) {
					n = huge
				}
				m := pipeSumMsg(buf, s, seq, n)
				mu.Lock()
				err := c.Send(context.Background(), m)
				mu.Unlock()
				if err != nil {
					errs <- fmt.Errorf("sender %d: send %d: %w", s, seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// pipeRecvMixed receives what pipeSendMixed sent, alternating Recv into
// a buffer of size bufSize and RecvBytes, and checks each message's
// checksum and each sender's order. It returns how many messages were
// longer than capa-8 bytes, and the longest.
func pipeRecvMixed(c *Conn, senders, count, capa, bufSize int) (long, longest int, err error) {
	next := make([]uint64, senders)
	buf := make([]byte, bufSize)
	for i := range senders * count {
		var m []byte
		if i%3 == 2 {
			m, err = c.RecvBytes(context.Background())
		} else {
			var n int
			n, err = c.Recv(context.Background(), buf)
			m = buf[:n]
		}
		if err != nil {
			return long, longest, fmt.Errorf("message %d: %w", i, err)
		}
		s, seq, err := pipeSumCheck(m)
		if err != nil {
			return long, longest, err
		}
		if s >= uint64(senders) || seq != next[s] {
			return long, longest, fmt.Errorf("message %d: sender %d message %d, want %v", i, s, seq, next)
		}
		next[s]++
		if len(m) > spscMaxRec(capa) {
			long++
		}
		longest = max(longest, len(m))
	}
	return long, longest, nil
}

// pipeRoleLargeSend: PATH SENDERS COUNT CAPA BIG HUGE — attach end 1 of a
// one-way pipe and pipeSendMixed, then close and exit.
func pipeRoleLargeSend(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	var v [5]int
	for i := range v {
		v[i], _ = strconv.Atoi(args[1+i])
	}
	c, err := AttachPipe(mem, 1, pipeChildOpts(args[0]))
	if err != nil {
		return err
	}
	if err := pipeSendMixed(c, v[0], v[1], v[2], v[3], v[4]); err != nil {
		return err
	}
	return c.Close()
}

// TestPipeLargeAcrossProcesses sends a 16 MiB message through a pipe of
// 64 KiB rings to another process, among messages of random sizes, small
// and in pieces, from two goroutines of the sender at once; every message
// arrives whole (its SHA-256 matches), once, in its sender's order.
func TestPipeLargeAcrossProcesses(t *testing.T) {
	const capa, big, huge = 64 << 10, 1 << 20, 16 << 20
	opts := &PipeOptions{OneWay: true, Capacity: capa}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	r, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	senders, count := 2, 300
	if testing.Short() {
		count = 100
	}
	child := proctest.Start(t, "pipe-large-send", path, strconv.Itoa(senders), strconv.Itoa(count),
		strconv.Itoa(capa), strconv.Itoa(big), strconv.Itoa(huge))
	long, longest, err := pipeRecvMixed(r, senders, count, capa, huge)
	if err != nil {
		t.Fatal(err)
	}
	if long == 0 || long == senders*count || longest != huge {
		t.Errorf("%d of %d messages in pieces, the longest %d bytes: not the mix the test needs", long, senders*count, longest)
	}
	t.Logf("%d messages, %d of them in pieces, the longest %d bytes", senders*count, long, longest)
	if _, err := r.Recv(context.Background(), make([]byte, 8)); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
	child.WaitOK()
	if st := r.State(); st.RecvBytes != 0 {
		t.Errorf("ring not drained: %+v", st)
	}
}

// TestPipeConcurrentSenders is TestPipeLargeAcrossProcesses in one
// process with four senders and a small ring, under the race detector.
func TestPipeConcurrentSenders(t *testing.T) {
	const capa, big, huge = 1024, 16 << 10, 256 << 10
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: capa})
	senders, count := 4, 400
	if testing.Short() {
		count = 100
	}
	done := make(chan error, 1)
	go func() { done <- pipeSendMixed(a, senders, count, capa, big, huge) }()
	long, longest, err := pipeRecvMixed(b, senders, count, capa, huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if long == 0 || long == senders*count || longest != huge {
		t.Errorf("%d of %d messages in pieces, the longest %d bytes", long, senders*count, longest)
	}
}

// pipeRoleLargeOne: PATH SIZE — attach end 1 of a one-way pipe, send
// "first", then a SIZE-byte message, which waits for room; then linger.
func pipeRoleLargeOne(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	size, _ := strconv.Atoi(args[1])
	c, err := AttachPipe(mem, 1, pipeChildOpts(args[0]))
	if err != nil {
		return err
	}
	if err := c.Send(context.Background(), []byte("first")); err != nil {
		return err
	}
	if err := c.Send(context.Background(), bytes.Repeat([]byte{0xa5}, size)); err != nil {
		return err
	}
	time.Sleep(time.Hour)
	return nil
}

// TestPipeSenderKilledMidMessage stops a sender (SIGSTOP) while the ring
// holds the first pieces of its 4 MiB message, as the ring's shared words
// show, lets the receiver take them, and kills the sender: the receiver
// gets io.EOF within a second, not a part of the message, and did not
// return while the sender was only stopped.
func TestPipeSenderKilledMidMessage(t *testing.T) {
	const capa, size = 64 << 10, 4 << 20
	for _, name := range []string{"Recv", "RecvBytes"} {
		t.Run(name, func(t *testing.T) {
			check := 20 * time.Millisecond
			opts := &PipeOptions{OneWay: true, Capacity: capa, CheckInterval: check}
			mem, path := pipeTestFile(t, PipeSizeOf(opts))
			r, err := InitPipe(mem, pipeRegOpts(t, opts, path))
			if err != nil {
				t.Fatal(err)
			}
			child := proctest.Start(t, "pipe-large-one", path, strconv.Itoa(size))
			sh, data := spscAt(mem[pipeRingsOff:], capa)
			// Wait for the ring to fill: "first" (a 16-byte record), then
			// the first pieces of the large message.
			deadline := time.Now().Add(10 * time.Second)
			for atomic.LoadUint64(&sh.tail)-atomic.LoadUint64(&sh.head) < capa/2 {
				if time.Now().After(deadline) {
					t.Fatalf("ring not filled: head %d tail %d", atomic.LoadUint64(&sh.head), atomic.LoadUint64(&sh.tail))
				}
				time.Sleep(time.Millisecond)
			}
			if err := child.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			proctest.WaitStopped(t, child.Pid())
			head := atomic.LoadUint64(&sh.head)
			h := *(*uint32)(unsafe.Pointer(&data[(head+16)%capa]))
			pad := spscPad(head+16, int(h&^spscPieceKinds))
			total := *(*uint64)(unsafe.Pointer(&data[(head+24+pad)%capa]))
			if h&spscPieceKinds != spscPieceFirst || total != size {
				t.Fatalf("record after the first message: header %#x, total %d; want a first piece of %d", h, total, size)
			}
			if n, err := r.Recv(context.Background(), make([]byte, 8)); err != nil || n != 5 {
				t.Fatalf("first message: %d, %v", n, err)
			}
			type result struct {
				n   int
				b   []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				var res result
				if name == "Recv" {
					res.n, res.err = r.Recv(context.Background(), make([]byte, size))
				} else {
					res.b, res.err = r.RecvBytes(context.Background())
				}
				done <- res
			}()
			deadline = time.Now().Add(10 * time.Second)
			for atomic.LoadUint64(&sh.head) != atomic.LoadUint64(&sh.tail) {
				if time.Now().After(deadline) {
					t.Fatal("receiver did not take the pieces in the ring")
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case res := <-done:
				t.Fatalf("receive returned while the sender was stopped, not dead: %d bytes, %v", max(res.n, len(res.b)), res.err)
			case <-time.After(10 * check):
			}
			child.Kill()
			killed := time.Now()
			select {
			case res := <-done:
				if res.err != io.EOF || res.n != 0 || res.b != nil {
					t.Errorf("receive after the sender died mid-message: %d bytes, %v; want io.EOF", max(res.n, len(res.b)), res.err)
				}
				if d := time.Since(killed); d > time.Second {
					t.Errorf("io.EOF %v after the kill", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("receive still blocked 5 s after the sender died mid-message")
			}
			if _, err := r.TryRecv(make([]byte, 8)); err != io.EOF {
				t.Errorf("TryRecv after: %v, want io.EOF", err)
			}
			child.Wait(0)
		})
	}
}

func TestPipeMaxLength(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	ctx := context.Background()
	long := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes: in pieces
	go func() {
		for _, m := range [][]byte{[]byte("0123456789"), []byte("abc"), long, []byte("tail"), long, []byte("x"), nil} {
			if err := a.Send(ctx, m); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	recv := func(maxLength int, want []byte, wantErr error) {
		t.Helper()
		got, err := b.RecvBytesMax(ctx, maxLength)
		if !errors.Is(err, wantErr) || !bytes.Equal(got, want) || (want != nil) != (got != nil) {
			t.Fatalf("RecvBytesMax(%d) = %d bytes, %v; want %d bytes, %v", maxLength, len(got), err, len(want), wantErr)
		}
	}
	recv(5, nil, ErrMaxLength)    // one record, consumed and dropped
	recv(5, []byte("abc"), nil)   // the next message
	recv(9999, nil, ErrMaxLength) // in pieces, consumed and dropped
	recv(5, []byte("tail"), nil)
	recv(len(long), long, nil) // exactly maxLength
	recv(-1, nil, ErrMaxLength)
	recv(0, []byte{}, nil)
}

func TestPipeReadableWritableClosed(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	r, w, _ := pipeTestPair(t, &PipeOptions{Capacity: 256, OneWay: true})
	for _, c := range []struct {
		name                       string
		c                          *Conn
		readable, writable, closed bool
	}{
		{"duplex end 0", a, true, true, false},
		{"duplex end 1", b, true, true, false},
		{"one-way end 0", r, true, false, false},
		{"one-way end 1", w, false, true, false},
	} {
		if got := [3]bool{c.c.Readable(), c.c.Writable(), c.c.Closed()}; got != [3]bool{c.readable, c.writable, c.closed} {
			t.Errorf("%s: readable, writable, closed = %v", c.name, got)
		}
	}
	a.Close()
	w.Detach()
	for _, c := range []*Conn{a, w} {
		if !c.Closed() {
			t.Errorf("end %d: Closed false after Close or Detach", c.End())
		}
	}
	if b.Closed() || r.Closed() {
		t.Error("an end reports closed after its peer's Close")
	}
	if !a.Readable() || !a.Writable() {
		t.Error("Close changed Readable or Writable")
	}
}

// TestPipeAbandonedMessage: a Send that fails part way through a message
// in pieces leaves no message; the receiver drops the pieces it took and
// receives the next message.
func TestPipeAbandonedMessage(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	big := bytes.Repeat([]byte{1}, 4096)
	for name, send := range map[string]func() error{
		"SendTimeout": func() error { return a.SendTimeout(big, 20*time.Millisecond) },
		"TrySend":     func() error { return a.TrySend(big) },
		"Send": func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			return a.Send(ctx, big)
		},
	} {
		want := ErrFull
		if name == "Send" {
			want = context.DeadlineExceeded
		}
		if err := send(); !errors.Is(err, want) {
			t.Fatalf("%s of a message in pieces to an idle receiver: %v, want %v", name, err, want)
		}
		if st := a.State(); st.SendBytes == 0 {
			t.Fatalf("%s: no piece in the ring; the test needs some", name)
		}
		done := make(chan error, 1)
		go func() { done <- a.Send(context.Background(), []byte(name)) }()
		got, err := b.RecvBytes(context.Background())
		if err != nil || string(got) != name {
			t.Fatalf("after an abandoned %s: %q, %v; want %q", name, got, err, name)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Sender closes part way: the receiver drops the part and sees io.EOF.
	go func() {
		time.Sleep(20 * time.Millisecond)
		a.Close()
	}()
	if err := a.Send(context.Background(), big); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send when its end closes: %v, want ErrClosed", err)
	}
	if got, err := b.RecvBytes(context.Background()); err != io.EOF {
		t.Fatalf("RecvBytes after the sender closed part way: %d bytes, %v; want io.EOF", len(got), err)
	}
}

// pipePieces writes msg on c in pieces of at most 64 bytes by hand, so
// that a test can stop between pieces: each call of the result writes the
// next piece, waiting for room, and reports whether one was left.
func pipePieces(c *Conn, msg []byte) func() (bool, error) {
	off := 0
	return func() (bool, error) {
		if off == len(msg) {
			return false, nil
		}
		kind, head := uint32(spscPieceMore), 0
		if off == 0 {
			kind, head = spscPieceFirst, spscPieceTotal
		}
		k := min(64-head, len(msg)-off)
		if err := c.waitRoom(context.Background(), spscSpanMax(head+k), time.Time{}, false); err != nil {
			return false, err
		}
		c.tx.writePiece(kind, uint64(len(msg)), msg[off:off+k])
		off += k
		return true, nil
	}
}

// TestPipeRecvResumes: a receive that returns before the last piece
// (try, timeout) keeps what it took; the next receive, of any form,
// completes the message.
func TestPipeRecvResumes(t *testing.T) {
	msg := make([]byte, 4096)
	for i := range msg {
		msg[i] = byte(pipeMix(uint64(i)))
	}
	for _, second := range []string{"TryRecv", "RecvBytes", "Recv", "ShortBuffer", "RecvBytesMax"} {
		t.Run(second, func(t *testing.T) {
			a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
			piece := pipePieces(a, msg)
			for range 3 {
				if _, err := piece(); err != nil {
					t.Fatal(err)
				}
			}
			// A buffer too small for the message leaves its first piece.
			buf := make([]byte, len(msg))
			if n, err := b.TryRecv(buf[:100]); n != len(msg) || !errors.Is(err, ErrShortBuffer) || b.part.active {
				t.Fatalf("TryRecv into 100 bytes = %d, %v; want %d, ErrShortBuffer", n, err, len(msg))
			}
			if n, err := b.TryRecv(buf); err != ErrEmpty || !b.part.active || b.part.got != 56+64+64 {
				t.Fatalf("TryRecv of 3 pieces = %d, %v, %+v; want ErrEmpty and the pieces kept", n, err, b.part)
			}
			if _, err := b.RecvTimeout(make([]byte, len(msg)), time.Millisecond); err != ErrEmpty || b.part.got != 56+64+64 {
				t.Fatalf("RecvTimeout with no more pieces = %v, %+v; want ErrEmpty", err, b.part)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			if _, err := b.RecvBytes(ctx); !errors.Is(err, context.DeadlineExceeded) || b.part.got != 56+64+64 {
				t.Fatalf("RecvBytes with an expiring context = %v, %+v; want DeadlineExceeded", err, b.part)
			}
			done := make(chan error, 1)
			go func() {
				for {
					if more, err := piece(); !more || err != nil {
						done <- err
						return
					}
				}
			}()
			var got []byte
			var err error
			switch second {
			case "TryRecv":
				for {
					var n int
					if n, err = b.TryRecv(buf); err != ErrEmpty {
						got = buf[:n]
						break
					}
				}
			case "RecvBytes":
				got, err = b.RecvBytes(context.Background())
			case "Recv":
				var n int
				n, err = b.Recv(context.Background(), buf)
				got = buf[:n]
			case "ShortBuffer":
				if n, err := b.Recv(context.Background(), buf[:100]); n != len(msg) || !errors.Is(err, ErrShortBuffer) {
					t.Fatalf("Recv into 100 bytes part way = %d, %v; want %d, ErrShortBuffer", n, err, len(msg))
				}
				got, err = b.RecvBytes(context.Background())
			case "RecvBytesMax":
				if got, err := b.RecvBytesMax(context.Background(), 100); !errors.Is(err, ErrMaxLength) || got != nil {
					t.Fatalf("RecvBytesMax(100) part way = %d bytes, %v; want ErrMaxLength", len(got), err)
				}
				got, err = msg, nil
			}
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s after interrupted receives: %d bytes, %v; want the message", second, len(got), err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if b.part.active || b.State().RecvBytes != 0 {
				t.Errorf("state after the message: %+v, %+v", b.part, b.State())
			}
		})
	}
}

// TestPipeDropFinishedByAnotherReceive: a RecvBytesMax that refuses a
// long message and gives up waiting part way through it leaves the drop to
// the next receive; a receive the message is not too long for finishes
// the drop and returns the next message, not the earlier call's refusal.
func TestPipeDropFinishedByAnotherReceive(t *testing.T) {
	msg := make([]byte, 4096)
	for _, next := range []string{"Recv", "RecvBytes", "RecvBytesMax"} {
		t.Run(next, func(t *testing.T) {
			a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
			piece := pipePieces(a, msg)
			for range 3 {
				if _, err := piece(); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			if _, err := b.RecvBytesMax(ctx, 100); !errors.Is(err, context.DeadlineExceeded) || !b.part.discard {
				t.Fatalf("RecvBytesMax(100) part way = %v, %+v; want DeadlineExceeded and the message being dropped", err, b.part)
			}
			done := make(chan error, 1)
			go func() {
				for {
					if more, err := piece(); !more || err != nil {
						if err == nil {
							err = a.Send(context.Background(), []byte("next"))
						}
						done <- err
						return
					}
				}
			}()
			var got []byte
			var err error
			switch next {
			case "Recv":
				buf := make([]byte, 100)
				var n int
				n, err = b.Recv(context.Background(), buf)
				got = buf[:n]
			case "RecvBytes":
				got, err = b.RecvBytes(context.Background())
			case "RecvBytesMax":
				// Too long for this call as well: its refusal.
				if got, err := b.RecvBytesMax(context.Background(), 100); !errors.Is(err, ErrMaxLength) || got != nil {
					t.Fatalf("RecvBytesMax(100) = %d bytes, %v; want ErrMaxLength", len(got), err)
				}
				got, err = b.RecvBytesMax(context.Background(), 100)
			}
			if err != nil || string(got) != "next" {
				t.Fatalf("%s after a dropped message = %q, %v; want the next message", next, got, err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPipeHostileLength: a first piece whose header claims a huge message
// costs at most 64 MiB of allocation before its bytes arrive, and nothing
// for RecvBytesMax with a small maxLength.
func TestPipeHostileLength(t *testing.T) {
	const capa = 512
	hostile := func(mem []byte) {
		ring := mem[pipeRingsOff:]
		h := uint32(16) | spscPieceFirst
		*(*uint64)(unsafe.Pointer(&ring[spscHeaderSize])) = uint64(h) | uint64(^h)<<32
		*(*uint64)(unsafe.Pointer(&ring[spscHeaderSize+8])) = PipeMaxMsgSize
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&ring[0])), 24)
	}
	for _, c := range []struct {
		name  string
		recv  func(c *Conn, ctx context.Context) error
		bound uint64
	}{
		{"RecvBytes", func(c *Conn, ctx context.Context) error { _, err := c.RecvBytes(ctx); return err }, pipeAllocAhead + 1<<20},
		{"RecvBytesMax", func(c *Conn, ctx context.Context) error { _, err := c.RecvBytesMax(ctx, 1<<20); return err }, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _, mem := pipeTestPair(t, &PipeOptions{Capacity: capa})
			hostile(mem)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			if err := c.recv(a, ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s of a message that never comes: %v", c.name, err)
			}
			runtime.ReadMemStats(&m1)
			if d := m1.TotalAlloc - m0.TotalAlloc; d > c.bound {
				t.Errorf("%s allocated %d bytes on a header's word, bound %d", c.name, d, c.bound)
			}
		})
	}
}

// TestPipeCorruptPieces: piece headers a hostile peer could write give
// shm.ErrCorrupt, never a crash or a huge allocation.
func TestPipeCorruptPieces(t *testing.T) {
	const capa = 512
	hdr := func(h uint32) uint64 { return uint64(h) | uint64(^h)<<32 }
	cases := []struct {
		name    string
		records []uint64 // 8-byte words from the start of ring 0's data
	}{
		{"both kinds", []uint64{hdr(16 | spscPieceKinds), 100, 0}},
		{"piece longer than the ring", []uint64{hdr(capa | spscPieceMore), 0}},
		{"first piece without its total", []uint64{hdr(4 | spscPieceFirst), 0}},
		{"total over the maximum", []uint64{hdr(16 | spscPieceFirst), 1 << 40, 0}},
		{"total under the first piece", []uint64{hdr(24 | spscPieceFirst), 8, 0, 0}},
		{"continuation past the total", []uint64{hdr(16 | spscPieceFirst), 16, 0, hdr(16 | spscPieceMore), 0, 0}},
		{"continuation past the published", []uint64{hdr(16 | spscPieceFirst), 100, 0, hdr(64 | spscPieceMore), 0}},
	}
	for _, c := range cases {
		for _, recv := range []string{"Recv", "RecvBytes", "TryRecv"} {
			t.Run(c.name+"/"+recv, func(t *testing.T) {
				a, _, mem := pipeTestPair(t, &PipeOptions{Capacity: capa})
				ring := mem[pipeRingsOff:]
				for i, w := range c.records {
					*(*uint64)(unsafe.Pointer(&ring[spscHeaderSize+8*i])) = w
				}
				atomic.StoreUint64((*uint64)(unsafe.Pointer(&ring[0])), uint64(8*len(c.records)))
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				var err error
				switch recv {
				case "Recv":
					_, err = a.Recv(ctx, make([]byte, 1024))
				case "RecvBytes":
					_, err = a.RecvBytes(ctx)
				case "TryRecv":
					_, err = a.TryRecv(make([]byte, 1024))
				}
				if !errors.Is(err, shm.ErrCorrupt) {
					t.Errorf("got %v, want ErrCorrupt", err)
				}
				// Later calls may fail, but not crash.
				ctx2, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
				defer cancel2()
				a.RecvBytes(ctx2)
				a.TryRecv(make([]byte, 1024))
			})
		}
	}
}
