//go:build linux

package ringbuf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	roles["pipe-send"] = pipeRoleSend
	roles["pipe-echo"] = pipeRoleEcho
	roles["pipe-stream"] = pipeRoleStream
	roles["pipe-idle"] = pipeRoleIdle
	roles["pipe-bench"] = pipeRoleBench
	roles["pipe-seg-echo"] = pipeRoleSegEcho
}

// pipeAligned returns n zeroed bytes of process memory, 64-byte aligned.
func pipeAligned(n int) []byte {
	b := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	return b[off : off+n : off+n]
}

// pipeTestPair makes a pipe in process memory and returns both ends.
func pipeTestPair(tb testing.TB, opts *PipeOptions) (a, b *Conn, mem []byte) {
	tb.Helper()
	mem = pipeAligned(PipeSizeOf(opts))
	a, err := InitPipe(mem, opts)
	if err != nil {
		tb.Fatal(err)
	}
	b, err = AttachPipe(mem, 1, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return a, b, mem
}

// pipeTestFile maps a fresh /dev/shm file of n bytes; see proctest.SharedFile.
func pipeTestFile(tb testing.TB, n int) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, n)
	return mem, path
}

// pipeRegOpts returns opts with the registry shared by the processes of
// the test that share the file at path.
func pipeRegOpts(tb testing.TB, opts *PipeOptions, path string) *PipeOptions {
	o := *opts
	o.Registry = regtest.Registry(tb, path)
	return &o
}

// pipeChildOpts is pipeRegOpts in a child (no test to fail): nil options
// when the registry cannot be opened, so that the test sees the failure.
func pipeChildOpts(path string) *PipeOptions {
	reg, err := regtest.Open(path)
	if err != nil {
		return nil
	}
	return &PipeOptions{Registry: reg}
}

// pipeMapFile maps the file at path (child side); see proctest.MapFile.
func pipeMapFile(path string) ([]byte, error) { return proctest.MapFile(path) }

// Test messages: message i has a size derived from i, its index in the
// first 8 bytes, filler derived from i, and a CRC-32 of the rest in the
// last 4 bytes.

func pipeMix(i uint64) uint64 {
	i += 0x9e3779b97f4a7c15
	i = (i ^ i>>30) * 0xbf58476d1ce4e5b9
	i = (i ^ i>>27) * 0x94d049bb133111eb
	return i ^ i>>31
}

func pipeMsgSize(i uint64, max int) int {
	m := pipeMix(i)
	// Reduce in uint64: int(m>>8) is negative half the time where int is
	// 32 bits.
	if m%16 == 0 { // now and then a large one
		return 12 + int((m>>8)%uint64(max-11))
	}
	return 12 + int((m>>8)%uint64(min(300, max-11)))
}

func pipeMakeMsg(buf []byte, i uint64, max int) []byte {
	n := pipeMsgSize(i, max)
	b := buf[:n]
	binary.LittleEndian.PutUint64(b, i)
	f := byte(pipeMix(i ^ 0x55))
	for j := 8; j < n-4; j++ {
		b[j] = f + byte(j)
	}
	binary.LittleEndian.PutUint32(b[n-4:], crc32.ChecksumIEEE(b[:n-4]))
	return b
}

// pipeCheckMsg returns the index of a well-formed message, or an error.
func pipeCheckMsg(b []byte, max int) (uint64, error) {
	if len(b) < 12 {
		return 0, fmt.Errorf("message of %d bytes", len(b))
	}
	i := binary.LittleEndian.Uint64(b)
	if want := pipeMsgSize(i, max); len(b) != want {
		return i, fmt.Errorf("message %d: %d bytes, want %d", i, len(b), want)
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return i, fmt.Errorf("message %d: checksum mismatch", i)
	}
	return i, nil
}

func TestPipeLayout(t *testing.T) {
	var s spscShared
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"tail", unsafe.Offsetof(s.tail), 0},
		{"head", unsafe.Offsetof(s.head), 64},
		{"rwait", unsafe.Offsetof(s.rwait), 128},
		{"wwait", unsafe.Offsetof(s.wwait), 192},
		{"size", unsafe.Sizeof(s), 256},
		{"end.closed", unsafe.Offsetof(pipeEnd{}.closed), 8},
		{"header.flags", unsafe.Offsetof(pipeHeader{}.flags), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, want %d", c.name, c.got, c.want)
		}
	}
	if got := PipeSizeOf(nil); got != 192+2*(256+64<<10) {
		t.Errorf("PipeSizeOf(nil) = %d", got)
	}
	if got := PipeSizeOf(&PipeOptions{Capacity: 1000, OneWay: true}); got != 192+256+1024 {
		t.Errorf("PipeSizeOf(1000, one-way) = %d", got)
	}
	if got := PipeSizeOf(&PipeOptions{Capacity: 3}); got != 192+2*(256+PipeMinCapacity) {
		t.Errorf("PipeSizeOf(3) = %d", got)
	}
	if got := PipeSizeOf(&PipeOptions{Capacity: PipeMaxCapacity + 1}); got != 0 {
		t.Errorf("PipeSizeOf(too big) = %d, want 0", got)
	}
}

// TestPipeInProcess streams messages of varying sizes, some of them in
// pieces, through a small ring in both directions at once, so records wrap
// around the ring's end constantly and both sides sleep and wake.
func TestPipeInProcess(t *testing.T) {
	opts := &PipeOptions{Capacity: 1024, MaxMsgSize: 4096}
	a, b, _ := pipeTestPair(t, opts)
	n := uint64(100000)
	if testing.Short() {
		n = 20000
	}
	max := a.MaxMsgSize()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(tx, rx *Conn) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, max)
			for i := range n {
				if err := tx.Send(context.Background(), pipeMakeMsg(buf, i, max)); err != nil {
					errs <- fmt.Errorf("send %d: %w", i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, max)
			for want := range n {
				k, err := rx.Recv(context.Background(), buf)
				if err != nil {
					errs <- fmt.Errorf("recv %d: %w", want, err)
					return
				}
				if i, err := pipeCheckMsg(buf[:k], max); err != nil || i != want {
					errs <- fmt.Errorf("recv: got %d (%v), want %d", i, err, want)
					return
				}
			}
		}()
	}
	run(a, b)
	run(b, a)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range []*Conn{a, b} {
		if _, err := c.TryRecv(nil); !errors.Is(err, ErrEmpty) {
			t.Errorf("TryRecv at the end: %v, want ErrEmpty", err)
		}
	}
	if st := a.State(); st.RecvBytes != 0 || st.SendBytes != 0 {
		t.Errorf("rings not empty at the end: %+v", st)
	}
}

func TestPipeOneWay(t *testing.T) {
	opts := &PipeOptions{OneWay: true, Capacity: 512}
	r, w, _ := pipeTestPair(t, opts)
	if err := r.Send(context.Background(), []byte("x")); !errors.Is(err, ErrPipeReadOnly) {
		t.Errorf("Send on receive-only end: %v, want ErrPipeReadOnly", err)
	}
	if _, err := w.Recv(context.Background(), make([]byte, 8)); !errors.Is(err, ErrPipeWriteOnly) {
		t.Errorf("Recv on send-only end: %v, want ErrPipeWriteOnly", err)
	}
	if _, err := w.Poll(0); !errors.Is(err, ErrPipeWriteOnly) {
		t.Errorf("Poll on send-only end: %v, want ErrPipeWriteOnly", err)
	}
	if _, err := w.RecvBytes(context.Background()); !errors.Is(err, ErrPipeWriteOnly) {
		t.Errorf("RecvBytes on send-only end: %v, want ErrPipeWriteOnly", err)
	}
	if err := w.Send(context.Background(), []byte("one way")); err != nil {
		t.Fatal(err)
	}
	got, err := r.RecvBytes(context.Background())
	if err != nil || string(got) != "one way" {
		t.Fatalf("RecvBytes = %q, %v", got, err)
	}
}

func TestPipeTooLarge(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256, MaxMsgSize: 100})
	if a.MaxMsgSize() != 100 {
		t.Fatalf("MaxMsgSize = %d", a.MaxMsgSize())
	}
	for _, send := range []func([]byte) error{
		func(m []byte) error { return a.Send(context.Background(), m) },
		a.TrySend,
		func(m []byte) error { return a.SendTimeout(m, time.Second) },
	} {
		if err := send(make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("101-byte message: %v, want ErrTooLarge", err)
		}
	}
	if err := a.Send(context.Background(), make([]byte, 100)); err != nil {
		t.Fatalf("100-byte message: %v", err)
	}
	if n, err := b.Recv(context.Background(), make([]byte, 100)); n != 100 || err != nil {
		t.Fatalf("Recv = %d, %v", n, err)
	}
	// Where int is 32 bits no int exceeds PipeMaxMsgSize.
	if tooBig := uint64(PipeMaxMsgSize) + 1; tooBig <= math.MaxInt {
		if _, err := InitPipe(pipeAligned(PipeSizeOf(nil)), &PipeOptions{Capacity: 256, MaxMsgSize: int(tooBig)}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("InitPipe with MaxMsgSize > PipeMaxMsgSize: %v, want ErrTooLarge", err)
		}
	}
	if c, _, _ := pipeTestPair(t, &PipeOptions{Capacity: 256}); c.MaxMsgSize() != PipeMaxMsgSize {
		t.Errorf("default MaxMsgSize = %d, want %d", c.MaxMsgSize(), PipeMaxMsgSize)
	}
	if _, err := InitPipe(pipeAligned(1024), &PipeOptions{Capacity: PipeMaxCapacity + 1}); err == nil {
		t.Error("InitPipe with capacity over the maximum succeeded")
	}
	// The longest whole record, capacity-64 bytes, at position 0 fills the
	// whole ring: 8 bytes of header, 56 of padding, then the payload.
	x, y, _ := pipeTestPair(t, &PipeOptions{Capacity: 1024})
	full := bytes.Repeat([]byte{7}, 960)
	if err := x.Send(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	if err := x.TrySend(nil); !errors.Is(err, ErrFull) {
		t.Errorf("TrySend on a ring filled by one message: %v, want ErrFull", err)
	}
	got, err := y.RecvBytes(context.Background())
	if err != nil || !bytes.Equal(got, full) {
		t.Fatalf("RecvBytes = %d bytes, %v", len(got), err)
	}
}

func TestPipeShortBuffer(t *testing.T) {
	a, b, _ := pipeTestPair(t, nil)
	msg := []byte("a message of thirty-one bytes!!")
	if err := a.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 10)
	for name, recv := range map[string]func() (int, error){
		"Recv":        func() (int, error) { return b.Recv(context.Background(), small) },
		"TryRecv":     func() (int, error) { return b.TryRecv(small) },
		"RecvTimeout": func() (int, error) { return b.RecvTimeout(small, time.Second) },
	} {
		n, err := recv()
		if !errors.Is(err, ErrShortBuffer) || n != len(msg) {
			t.Errorf("%s into 10 bytes = %d, %v; want %d, ErrShortBuffer", name, n, err, len(msg))
		}
	}
	buf := make([]byte, len(msg))
	n, err := b.Recv(context.Background(), buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("message after ErrShortBuffer: %q, %v", buf[:n], err)
	}
}

func TestPipeFullEmpty(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	buf := make([]byte, 64)
	if _, err := b.TryRecv(buf); !errors.Is(err, ErrEmpty) {
		t.Errorf("TryRecv on empty: %v, want ErrEmpty", err)
	}
	t0 := time.Now()
	if _, err := b.RecvTimeout(buf, 50*time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Errorf("RecvTimeout on empty: %v, want ErrEmpty", err)
	}
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Errorf("RecvTimeout returned after %v", d)
	}
	if _, err := b.RecvTimeout(buf, 0); !errors.Is(err, ErrEmpty) {
		t.Errorf("RecvTimeout(0) on empty: %v, want ErrEmpty", err)
	}
	if ok, err := b.Poll(0); ok || err != nil {
		t.Errorf("Poll(0) on empty = %v, %v", ok, err)
	}
	if ok, err := b.Poll(20 * time.Millisecond); ok || err != nil {
		t.Errorf("Poll(20ms) on empty = %v, %v", ok, err)
	}
	// 256 bytes hold four 56-byte messages (64-byte records).
	for i := range 4 {
		if err := a.TrySend(make([]byte, 56)); err != nil {
			t.Fatalf("TrySend %d: %v", i, err)
		}
	}
	if err := a.TrySend(nil); !errors.Is(err, ErrFull) {
		t.Errorf("TrySend on full: %v, want ErrFull", err)
	}
	if err := a.SendTimeout(nil, 30*time.Millisecond); !errors.Is(err, ErrFull) {
		t.Errorf("SendTimeout on full: %v, want ErrFull", err)
	}
	if st := a.State(); st.SendBytes != 256 || st.SendWaiting {
		t.Errorf("state after timed-out send: %+v", st)
	}
	if ok, err := b.Poll(0); !ok || err != nil {
		t.Errorf("Poll(0) with data = %v, %v", ok, err)
	}
	if st := b.State(); st.RecvBytes != 256 {
		t.Errorf("RecvBytes = %d, want 256", st.RecvBytes)
	}
}

// TestPipeSpaceReturnedAtOnce: the space of a received message is free
// for the sender as soon as Recv returns, even if the receiver never calls
// again (a receiver that held space back could deadlock two processes
// that each wait in Send for the other).
func TestPipeSpaceReturnedAtOnce(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 1024})
	for a.TrySend(make([]byte, 56)) == nil {
	}
	if _, err := b.Recv(context.Background(), make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if err := a.TrySend(make([]byte, 56)); err != nil {
		t.Fatalf("TrySend after the receiver freed a record: %v", err)
	}
}

// TestPipeBlocking checks that a blocked Recv and a blocked Send sleep and
// are woken by the other side.
func TestPipeBlocking(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 8)
		n, err := b.Recv(context.Background(), buf)
		if err == nil && string(buf[:n]) != "wake" {
			err = fmt.Errorf("got %q", buf[:n])
		}
		done <- err
	}()
	waitSleeper(t, func() bool { return b.State().RecvWaiting })
	if err := a.Send(context.Background(), []byte("wake")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.State().Wakes == 0 {
		t.Error("Send to a sleeping receiver made no wake call")
	}
	// Fill the ring, block a Send, free space.
	for a.TrySend(make([]byte, 56)) == nil {
	}
	go func() { done <- a.Send(context.Background(), make([]byte, 56)) }()
	waitSleeper(t, func() bool { return a.State().SendWaiting })
	if _, err := b.Recv(context.Background(), make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Send not woken by Recv")
	}
}

// waitSleeper waits until cond holds (a peer has registered as a waiter).
func waitSleeper(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("no waiter registered")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPipeContext(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Recv(ctx, make([]byte, 8)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv with expiring context: %v", err)
	}
	if _, err := b.RecvBytes(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RecvBytes with expired context: %v", err)
	}
	for a.TrySend(make([]byte, 56)) == nil {
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel2)
	if err := a.Send(ctx2, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with cancelled context: %v", err)
	}
	if st := a.State(); st.SendBytes != 256 || st.SendWaiting {
		t.Errorf("cancelled Send changed the pipe: %+v", st)
	}
}

func TestPipeClose(t *testing.T) {
	a, b, mem := pipeTestPair(t, &PipeOptions{Capacity: 256})
	// A Recv blocked on a is woken by a.Close with ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, err := a.Recv(context.Background(), make([]byte, 8))
		done <- err
	}()
	waitSleeper(t, func() bool { return a.State().RecvWaiting })
	for _, m := range []string{"one", "two"} {
		if err := a.Send(context.Background(), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Recv blocked across Close: %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not wake a blocked Recv")
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Send(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Recv(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Poll(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := a.Detach(); !errors.Is(err, ErrClosed) {
		t.Errorf("Detach after Close: %v, want ErrClosed", err)
	}
	// The peer drains, then sees the end of the stream.
	if err := b.Send(context.Background(), []byte("x")); !errors.Is(err, ErrPeerGone) {
		t.Errorf("Send to closed peer: %v, want ErrPeerGone", err)
	}
	if st := b.State(); !st.PeerClosed {
		t.Errorf("State.PeerClosed false: %+v", st)
	}
	buf := make([]byte, 8)
	for _, want := range []string{"one", "two"} {
		n, err := b.Recv(context.Background(), buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("drain: %q, %v; want %q", buf[:n], err, want)
		}
	}
	if ok, err := b.Poll(0); !ok || err != nil {
		t.Errorf("Poll at end of stream = %v, %v; want true", ok, err)
	}
	for name, recv := range map[string]func() error{
		"Recv":      func() error { _, err := b.Recv(context.Background(), buf); return err },
		"TryRecv":   func() error { _, err := b.TryRecv(buf); return err },
		"RecvBytes": func() error { _, err := b.RecvBytes(context.Background()); return err },
	} {
		if err := recv(); err != io.EOF {
			t.Errorf("%s after peer Close: %v, want io.EOF", name, err)
		}
	}
	// A closed end cannot be claimed again, even with its owner cleared.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[pipeEndsOff])), 0)
	if _, err := AttachPipe(mem, 0, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("attach of a closed end: %v, want ErrClosed", err)
	}
}

func TestPipeCloseWakesBlockedSend(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	for a.TrySend(make([]byte, 56)) == nil {
	}
	done := make(chan error, 2)
	go func() { done <- a.Send(context.Background(), []byte("x")) }()
	waitSleeper(t, func() bool { return a.State().SendWaiting })
	b.Close() // the peer closes: the blocked Send fails
	select {
	case err := <-done:
		if !errors.Is(err, ErrPeerGone) {
			t.Errorf("Send blocked across peer Close: %v, want ErrPeerGone", err)
		}
	case <-time.After(time.Second):
		t.Fatal("peer Close did not wake a blocked Send")
	}
	// Our own Close wakes our own blocked Send too.
	c, d, _ := pipeTestPair(t, &PipeOptions{Capacity: 256})
	for c.TrySend(make([]byte, 56)) == nil {
	}
	go func() { done <- c.Send(context.Background(), []byte("x")) }()
	waitSleeper(t, func() bool { return c.State().SendWaiting })
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Send blocked across own Close: %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not wake a blocked Send")
	}
	_ = d
}

func TestPipeAttach(t *testing.T) {
	a, _, mem := pipeTestPair(t, nil)
	if _, err := AttachPipe(mem, 1, nil); !errors.Is(err, ErrPipeInUse) {
		t.Errorf("second attach of end 1: %v, want ErrPipeInUse", err)
	}
	if _, err := AttachPipe(mem, 0, nil); !errors.Is(err, ErrPipeInUse) {
		t.Errorf("attach of the creator's end 0: %v, want ErrPipeInUse", err)
	}
	if _, err := AttachPipe(mem, 2, nil); err == nil {
		t.Error("attach of end 2 succeeded")
	}
	// Detach hands end 0 over; the new handle sees what was sent.
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Detach: %v, want ErrClosed", err)
	}
	a2, err := AttachPipe(mem, 0, nil)
	if err != nil {
		t.Fatalf("attach after Detach: %v", err)
	}
	if a2.End() != 0 || a2.State().Pid != os.Getpid() {
		t.Errorf("reattached end: %+v", a2.State())
	}
	// Memory that holds no pipe.
	if _, err := AttachPipe(make([]byte, 1024), 1, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("attach on zeroes: %v, want ErrCorrupt", err)
	}
	if _, err := AttachPipe(make([]byte, 16), 1, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("attach on 16 bytes: %v, want ErrCorrupt", err)
	}
	if _, err := AttachPipe(mem[:len(mem)-1], 1, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("attach on truncated memory: %v, want ErrCorrupt", err)
	}
	if _, err := InitPipe(pipeAligned(100), nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("InitPipe on short memory: %v, want ErrCorrupt", err)
	}
	if _, err := InitPipe(pipeAligned(PipeSizeOf(nil) + 8)[1:], nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("InitPipe on unaligned memory: %v, want ErrCorrupt", err)
	}
}

// TestPipeCorrupt sets each shared word a peer could scribble on to
// garbage and checks that the victim gets shm.ErrCorrupt, not a panic.
func TestPipeCorrupt(t *testing.T) {
	const capa = 512
	ring0 := pipeRingsOff                         // messages to end 0
	ring1 := pipeRingsOff + spscHeaderSize + capa // messages to end 1
	u64 := func(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }
	u32 := func(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	recvErr := func(c *Conn) error { _, err := c.TryRecv(make([]byte, capa)); return err }
	cases := []struct {
		name    string
		corrupt func(mem []byte)
		op      func(a, b *Conn) error
	}{
		{"tail beyond capacity", func(m []byte) { *u64(m, ring0) = capa + 8 }, func(a, b *Conn) error { return recvErr(a) }},
		{"tail behind head", func(m []byte) { *u64(m, ring0) = ^uint64(7) }, func(a, b *Conn) error { return recvErr(a) }},
		{"tail unaligned", func(m []byte) { *u64(m, ring0) = 12 }, func(a, b *Conn) error { return recvErr(a) }},
		{"record header check", func(m []byte) {
			*u64(m, ring0) = 64
			*u64(m, ring0+spscHeaderSize) = 5 // no ^n in the high half
		}, func(a, b *Conn) error { return recvErr(a) }},
		{"record over max", func(m []byte) {
			*u64(m, ring0) = 64
			*u64(m, ring0+spscHeaderSize) = uint64(capa) | uint64(^uint32(capa))<<32
		}, func(a, b *Conn) error { return recvErr(a) }},
		{"record over published", func(m []byte) {
			*u64(m, ring0) = 64
			*u64(m, ring0+spscHeaderSize) = 100 | uint64(^uint32(100))<<32
		}, func(a, b *Conn) error { return recvErr(a) }},
		{"padded record over published", func(m []byte) {
			// 264 bytes published hold a 256-byte record unpadded, but its
			// payload starts on the line after the header: it needs 320.
			*u64(m, ring0) = 264
			*u64(m, ring0+spscHeaderSize) = 256 | uint64(^uint32(256))<<32
		}, func(a, b *Conn) error { return recvErr(a) }},
		{"record over published, Poll", func(m []byte) {
			*u64(m, ring0) = 64
			*u64(m, ring0+spscHeaderSize) = 100 | uint64(^uint32(100))<<32
		}, func(a, b *Conn) error { _, err := a.Poll(time.Second); return err }},
		{"record over published, RecvBytes", func(m []byte) {
			*u64(m, ring0) = 64
			*u64(m, ring0+spscHeaderSize) = 100 | uint64(^uint32(100))<<32
		}, func(a, b *Conn) error { _, err := a.RecvBytes(context.Background()); return err }},
		{"head beyond tail", func(m []byte) { *u64(m, ring1+64) = 1 << 40 }, func(a, b *Conn) error {
			var err error
			for i := 0; i < 100 && err == nil; i++ { // until the cached head runs out
				err = a.TrySend(make([]byte, 56))
			}
			return err
		}},
		{"head unaligned, blocking Send", func(m []byte) { *u64(m, ring1+64) = 4 }, func(a, b *Conn) error {
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				err = a.Send(context.Background(), make([]byte, 56))
			}
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b, mem := pipeTestPair(t, &PipeOptions{Capacity: capa})
			c.corrupt(mem)
			if err := c.op(a, b); !errors.Is(err, shm.ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
		})
	}
	// Attach validates the header, the end records and the indices.
	attachCases := []struct {
		name    string
		corrupt func(mem []byte)
	}{
		{"magic", func(m []byte) { *u32(m, 0) = 0x12345678 }},
		{"version", func(m []byte) { *u32(m, 4) = 99 }},
		{"capacity not a power of two", func(m []byte) { *u32(m, 8) = 1000 }},
		{"capacity larger than memory", func(m []byte) { *u32(m, 8) = 1 << 20 }},
		{"capacity too small", func(m []byte) { *u32(m, 8) = 8 }},
		{"max message", func(m []byte) { *u32(m, 12) = PipeMaxMsgSize + 1 }},
		{"flags", func(m []byte) { *u32(m, 16) = 6 }},
		{"end closed word", func(m []byte) { *u32(m, pipeEndsOff+8) = 77 }},
		{"end owner pid", func(m []byte) { *u64(m, pipeEndsOff) = 1 << 30 }},
		{"ring indices", func(m []byte) { *u64(m, ring1) = 3 * capa }},
		{"ring head unaligned", func(m []byte) { *u64(m, ring1+64) = 3 }},
	}
	for _, c := range attachCases {
		t.Run("attach/"+c.name, func(t *testing.T) {
			mem := pipeAligned(PipeSizeOf(&PipeOptions{Capacity: capa}))
			if _, err := InitPipe(mem, &PipeOptions{Capacity: capa}); err != nil {
				t.Fatal(err)
			}
			c.corrupt(mem)
			if _, err := AttachPipe(mem, 1, nil); !errors.Is(err, shm.ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
			if atomic.LoadUint64(u64(mem, pipeEndsOff+pipeEndSize)) != 0 {
				t.Error("a failed attach claimed the end")
			}
		})
	}
}

// TestPipePayloadAlignment checks the record framing in the ring itself: a
// payload of 256 bytes or more starts on a 64-byte boundary of the data
// area, a shorter one right after its header, and both arrive intact.
func TestPipePayloadAlignment(t *testing.T) {
	a, b, mem := pipeTestPair(t, &PipeOptions{Capacity: 4096})
	data := mem[pipeRingsOff+spscHeaderSize : pipeRingsOff+spscHeaderSize+4096] // messages to end 0
	msgs := [][]byte{[]byte("12345678"), bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 255), bytes.Repeat([]byte{3}, 256)}
	// Header positions and where each payload must start.
	want := []struct{ hdr, payload int }{{0, 8}, {16, 64}, {368, 376}, {632, 640}}
	for i, m := range msgs {
		if err := b.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if h := binary.LittleEndian.Uint64(data[w.hdr:]); h != uint64(len(m))|uint64(^uint32(len(m)))<<32 {
			t.Errorf("message %d: header at %d is %#x", i, w.hdr, h)
		}
		if !bytes.Equal(data[w.payload:w.payload+len(m)], m) {
			t.Errorf("message %d: payload not at %d", i, w.payload)
		}
	}
	for i, m := range msgs {
		got, err := a.RecvBytes(context.Background())
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: RecvBytes = %d bytes, %v", i, len(got), err)
		}
	}
}

func TestPipeRecvBytesAndState(t *testing.T) {
	a, b, _ := pipeTestPair(t, &PipeOptions{Capacity: 4096, MaxMsgSize: 1000})
	msgs := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 500)}
	for _, m := range msgs {
		if err := a.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	st := b.State()
	if st.PeerSlot == 0 {
		t.Errorf("PeerSlot 0 for a claimed peer end")
	}
	want := PipeState{End: 1, Capacity: 4096, MaxMsgSize: 1000, Pid: os.Getpid(), PeerSlot: st.PeerSlot, PeerPid: os.Getpid(),
		PeerAlive: true, RecvBytes: 8 + 16 + 32 + 1008} // the 1000-byte payload at 24+8 is padded to 64
	if st != want {
		t.Errorf("State = %+v\nwant    %+v", st, want)
	}
	for _, m := range msgs {
		got, err := b.RecvBytes(context.Background())
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("RecvBytes = %q, %v; want %q", got, err, m)
		}
	}
}

// TestPipeNoAllocs checks the steady-state Send/Recv path allocates
// nothing.
func TestPipeNoAllocs(t *testing.T) {
	a, b, _ := pipeTestPair(t, nil)
	msg, buf := make([]byte, 64), make([]byte, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := a.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Recv(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		if err := a.TrySend(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := b.TryRecv(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Send/Recv", allocs)
	}
}

// Cross-process tests.

// pipeRoleSend: PATH N LINGER — attach end 1 of a one-way pipe, send N
// test messages, close, then stay alive for LINGER.
func pipeRoleSend(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	n, _ := strconv.ParseUint(args[1], 10, 64)
	linger, _ := time.ParseDuration(args[2])
	c, err := AttachPipe(mem, 1, pipeChildOpts(args[0]))
	if err != nil {
		return err
	}
	max := c.MaxMsgSize()
	buf := make([]byte, max)
	for i := range n {
		if err := c.Send(context.Background(), pipeMakeMsg(buf, i, max)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	fmt.Println("closed")
	time.Sleep(linger)
	return nil
}

// pipeRoleEcho: PATH — attach end 1 of a duplex pipe and answer each
// message i with message i+1, until the end of the stream.
func pipeRoleEcho(args []string) error { return pipeEcho(args, 0) }

// pipeEcho is pipeRoleEcho with liveness checks every check (0: the
// default).
func pipeEcho(args []string, check time.Duration) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	opts := pipeChildOpts(args[0])
	if opts != nil {
		opts.CheckInterval = check
	}
	c, err := AttachPipe(mem, 1, opts)
	if err != nil {
		return err
	}
	max := c.MaxMsgSize()
	in, out := make([]byte, max), make([]byte, max)
	for {
		n, err := c.Recv(context.Background(), in)
		if err == io.EOF {
			return c.Close()
		}
		if err != nil {
			return err
		}
		i, err := pipeCheckMsg(in[:n], max)
		if err != nil {
			return err
		}
		if err := c.Send(context.Background(), pipeMakeMsg(out, i+1, max)); err != nil {
			return err
		}
	}
}

// pipeRoleStream: PATH — attach end 1 of a one-way pipe and send test
// messages until killed.
func pipeRoleStream(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	c, err := AttachPipe(mem, 1, pipeChildOpts(args[0]))
	if err != nil {
		return err
	}
	max := c.MaxMsgSize()
	buf := make([]byte, max)
	for i := uint64(0); ; i++ {
		if err := c.Send(context.Background(), pipeMakeMsg(buf, i, max)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
}

// pipeRoleIdle: PATH — attach end 1, say ready, and never read.
func pipeRoleIdle(args []string) error {
	mem, err := pipeMapFile(args[0])
	if err != nil {
		return err
	}
	if _, err := AttachPipe(mem, 1, pipeChildOpts(args[0])); err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Hour)
	return nil
}

// TestPipeAcrossProcesses: a child sends N messages of varying sizes with
// checksums over a one-way pipe, then closes its end while staying alive;
// the parent receives every one, in order, exactly once, then io.EOF
// (from the close, not from the process's exit).
func TestPipeAcrossProcesses(t *testing.T) {
	opts := &PipeOptions{OneWay: true, Capacity: 8192, MaxMsgSize: 32 << 10}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	r, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	n := 300000
	if testing.Short() {
		n = 30000
	}
	child := proctest.Start(t, "pipe-send", path, strconv.Itoa(n), "1m")
	max := r.MaxMsgSize()
	buf := make([]byte, max)
	for want := range uint64(n) {
		k, err := r.Recv(context.Background(), buf)
		if err != nil {
			t.Fatalf("Recv %d: %v", want, err)
		}
		if i, err := pipeCheckMsg(buf[:k], max); err != nil || i != want {
			t.Fatalf("got message %d (%v), want %d", i, err, want)
		}
	}
	t0 := time.Now()
	if _, err := r.Recv(context.Background(), buf); err != io.EOF {
		t.Fatalf("after %d messages: %v, want io.EOF", n, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("io.EOF after the peer's Close took %v", d)
	}
	select {
	case <-child.Done():
		t.Fatal("child exited: the EOF did not prove close detection")
	default:
	}
	if !r.State().PeerAlive {
		t.Error("State: peer not alive")
	}
	child.Kill()
}

// TestPipeDuplexAcrossProcesses: request/response with a child.
func TestPipeDuplexAcrossProcesses(t *testing.T) {
	opts := &PipeOptions{Capacity: 4096, MaxMsgSize: 16 << 10}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	c, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	child := proctest.Start(t, "pipe-echo", path)
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	max := c.MaxMsgSize()
	out, in := make([]byte, max), make([]byte, max)
	for i := uint64(0); i < uint64(rounds)*2; i += 2 {
		if err := c.Send(context.Background(), pipeMakeMsg(out, i, max)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		n, err := c.Recv(context.Background(), in)
		if err != nil {
			t.Fatalf("Recv %d: %v", i+1, err)
		}
		if j, err := pipeCheckMsg(in[:n], max); err != nil || j != i+1 {
			t.Fatalf("response %d (%v), want %d", j, err, i+1)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	child.WaitOK() // the child saw io.EOF and exited
}

// TestPipePeerKilled kills a streaming child at a random point, which may
// be in the middle of a message in pieces: the parent receives every
// committed message, in order and exactly once, never a part of one, then
// io.EOF within a second.
func TestPipePeerKilled(t *testing.T) {
	trials := 3
	if testing.Short() {
		trials = 1
	}
	for trial := range trials {
		opts := &PipeOptions{OneWay: true, Capacity: 16384, MaxMsgSize: 64 << 10}
		mem, path := pipeTestFile(t, PipeSizeOf(opts))
		r, err := InitPipe(mem, pipeRegOpts(t, opts, path))
		if err != nil {
			t.Fatal(err)
		}
		child := proctest.Start(t, "pipe-stream", path)
		max := r.MaxMsgSize()
		buf := make([]byte, max)
		killAt := 1000 + pipeMix(uint64(time.Now().UnixNano()))%50000
		var killed time.Time
		var want uint64
		for ; ; want++ {
			if want == killAt {
				child.Kill()
				killed = time.Now()
			}
			k, err := r.Recv(context.Background(), buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("trial %d: Recv %d: %v", trial, want, err)
			}
			if i, err := pipeCheckMsg(buf[:k], max); err != nil || i != want {
				t.Fatalf("trial %d: got message %d (%v), want %d", trial, i, err, want)
			}
		}
		if killed.IsZero() {
			t.Fatalf("trial %d: io.EOF after %d messages, before the kill", trial, want)
		}
		if d := time.Since(killed); d > time.Second {
			t.Errorf("trial %d: io.EOF %v after the kill", trial, d)
		}
		if res := child.Wait(0); res.Signal == 0 {
			t.Errorf("trial %d: child was not killed: %+v", trial, res)
		}
		t.Logf("trial %d: killed after %d messages received, %d drained after", trial, killAt, want-killAt)
	}
}

// TestPipeSendToDeadPeer: a Send blocked on a full ring to a child that
// gets killed returns ErrPeerGone within a second; so does TrySend after.
func TestPipeSendToDeadPeer(t *testing.T) {
	opts := &PipeOptions{Capacity: 4096}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	c, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	child := proctest.Start(t, "pipe-idle", path)
	child.Expect(proctest.Ready, 0)
	msg := make([]byte, 100)
	for c.TrySend(msg) == nil {
	}
	if err := c.SendTimeout(msg, 50*time.Millisecond); !errors.Is(err, ErrFull) {
		t.Fatalf("SendTimeout to a live idle peer: %v, want ErrFull", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Send(context.Background(), msg) }()
	waitSleeper(t, func() bool { return c.State().SendWaiting })
	child.Kill()
	killed := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("Send to killed peer: %v, want ErrPeerGone", err)
		}
		if d := time.Since(killed); d > time.Second {
			t.Errorf("ErrPeerGone %v after the kill", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send to a killed peer still blocked after 5 s")
	}
	if st := c.State(); st.PeerAlive {
		t.Errorf("State: peer alive after kill: %+v", st)
	}
	time.Sleep(150 * time.Millisecond) // past the rate limit of non-blocking checks
	if err := c.TrySend(msg); !errors.Is(err, ErrPeerGone) {
		t.Errorf("TrySend to killed peer: %v, want ErrPeerGone", err)
	}
	t0 := time.Now()
	if ok, err := c.Poll(5 * time.Second); !ok || err != nil || time.Since(t0) > time.Second {
		t.Errorf("Poll on killed peer = %v, %v after %v; want true within a second", ok, err, time.Since(t0))
	}
	if _, err := c.RecvTimeout(make([]byte, 8), 5*time.Second); err != io.EOF {
		t.Errorf("RecvTimeout from killed peer: %v, want io.EOF", err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := c.TryRecv(make([]byte, 8)); err != io.EOF {
		t.Errorf("TryRecv from killed peer: %v, want io.EOF", err)
	}
}

// pipeRoleSegEcho: SEGMENT — open the pipe "chan" in the named segment as
// end 1 and echo each message back with a "re:" prefix until the end of
// the stream.
func pipeRoleSegEcho(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	c, err := OpenPipe(seg, "chan", 1, nil)
	if err != nil {
		return err
	}
	for {
		m, err := c.RecvBytes(context.Background())
		if err == io.EOF {
			return c.Close()
		}
		if err != nil {
			return err
		}
		if err := c.Send(context.Background(), append([]byte("re:"), m...)); err != nil {
			return err
		}
	}
}

// TestPipeSegment places a pipe in a named segment, talks to a child that
// opens it by name, and checks the directory errors.
func TestPipeSegment(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	c, err := CreatePipe(seg, "chan", &PipeOptions{Capacity: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreatePipe(seg, "chan", nil); !errors.Is(err, shm.ErrExist) {
		t.Errorf("CreatePipe on a taken name: %v, want shm.ErrExist", err)
	}
	if _, err := OpenPipe(seg, "nope", 1, nil); !errors.Is(err, shm.ErrNotExist) {
		t.Errorf("OpenPipe of a missing name: %v, want shm.ErrNotExist", err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "raw", Kind: shm.KindBytes, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPipe(seg, "raw", 1, nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Errorf("OpenPipe of a non-pipe: %v, want shm.ErrKindMismatch", err)
	}
	if _, err := CreatePipe(seg, "huge", &PipeOptions{Capacity: 1 << 20}); !errors.Is(err, shm.ErrFull) {
		t.Errorf("CreatePipe larger than the segment: %v, want shm.ErrFull", err)
	}
	child := proctest.Start(t, "pipe-seg-echo", name)
	for _, m := range []string{"A", "B", "C"} {
		if err := c.Send(context.Background(), []byte(m)); err != nil {
			t.Fatal(err)
		}
		got, err := c.RecvBytes(context.Background())
		if err != nil || string(got) != "re:"+m {
			t.Fatalf("reply %q, %v; want %q", got, err, "re:"+m)
		}
	}
	c.Close()
	child.WaitOK()
}
