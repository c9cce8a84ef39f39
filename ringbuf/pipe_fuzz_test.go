//go:build linux

package ringbuf

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mpipc/mpipc/shm"
)

// pipeFuzzErrOK reports whether err is one a pipe may return to a victim
// of a hostile peer.
func pipeFuzzErrOK(err error) bool {
	switch {
	case err == nil, err == io.EOF,
		errors.Is(err, ErrFull), errors.Is(err, ErrEmpty), errors.Is(err, ErrShortBuffer),
		errors.Is(err, ErrTooLarge), errors.Is(err, ErrClosed), errors.Is(err, ErrPeerGone),
		errors.Is(err, ErrPipeInUse), errors.Is(err, shm.ErrCorrupt),
		// A header scribbled one-way: the attached copy's end may be one-way.
		errors.Is(err, ErrPipeReadOnly), errors.Is(err, ErrPipeWriteOnly),
		errors.Is(err, context.DeadlineExceeded): // RecvBytes waiting for the rest of a message
		return true
	}
	return false
}

// FuzzPipeCorrupt interleaves operations on both ends of a live pipe
// with writes of arbitrary bytes anywhere in its shared memory (header,
// end records, ring indices, waiting words, records), as a buggy or
// hostile peer could. Every call must return a documented error or
// success; none may panic, read or write outside the pipe, or hang.
//
// The input is a program of commands; each starts with an opcode byte:
//
//	0 OFF16 VAL64  write VAL's 8 little-endian bytes at OFF mod size
//	1 N            end 0 TrySends N + N/8 bytes (over 248: in pieces); 2 N: end 1 does
//	3 N            end 0 TryRecvs into 2N bytes; 4 N: end 1 does
//	5              Poll(0) then RecvBytes on end 1, State of both ends
//	6              AttachPipe on a copy of the memory, then try it
//	7              end 1 RecvTimeout(100 µs); 8: end 0 SendTimeout(100 µs)
func FuzzPipeCorrupt(f *testing.F) {
	f.Add([]byte{1, 10, 4, 20, 2, 30, 3, 40})
	f.Add([]byte{1, 100, 0, 192, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4, 128})
	f.Add([]byte{1, 50, 0, 0, 2, 200, 0, 0, 0, 0, 0, 0, 0, 4, 60, 5})
	f.Add([]byte{1, 30, 0, 0, 3, 5, 0, 0, 0, 0, 0, 0, 0, 4, 60, 6})
	f.Add([]byte{0, 72, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 4, 10, 6})
	f.Add([]byte{2, 20, 2, 20, 2, 20, 0, 0x80, 1, 64, 0, 0, 0, 0, 0, 0, 0, 2, 20, 2, 20, 8})
	f.Add([]byte{0, 128, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 7, 8, 5, 6})
	f.Fuzz(func(t *testing.T, prog []byte) {
		opts := &PipeOptions{Capacity: 256, CheckInterval: time.Millisecond}
		a, b, mem := pipeTestPair(t, opts)
		ends := [2]*Conn{a, b}
		msg := make([]byte, 300)
		buf := make([]byte, 600)
		check := func(op string, n int, err error, limit int) {
			if !pipeFuzzErrOK(err) {
				t.Fatalf("%s: unexpected error %v", op, err)
			}
			if n < 0 || (err == nil && n > limit) {
				t.Fatalf("%s: returned %d bytes into %d", op, n, limit)
			}
		}
		for i := 0; i < len(prog); i++ {
			arg := func(k int) int {
				if i+k < len(prog) {
					return int(prog[i+k])
				}
				return 0
			}
			switch op := prog[i] % 9; op {
			case 0:
				var w [10]byte
				copy(w[:], prog[i+1:])
				off := int(binary.LittleEndian.Uint16(w[:])) % len(mem)
				copy(mem[off:], w[2:10])
				i += 10
			case 1, 2:
				err := ends[op-1].TrySend(msg[:arg(1)+arg(1)/8])
				check("TrySend", 0, err, 0)
				i++
			case 3, 4:
				k := 2 * arg(1)
				n, err := ends[op-3].TryRecv(buf[:k])
				check("TryRecv", n, err, k)
				i++
			case 5:
				if ok, err := b.Poll(0); err != nil || ok {
					check("Poll", 0, err, 0)
					if ok {
						// Poll says yes to the first piece of a message
						// whose rest may never come: bound the wait.
						ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
						m, err := b.RecvBytes(ctx)
						cancel()
						check("RecvBytes", len(m), err, b.MaxMsgSize())
					}
				}
				a.State()
				b.State()
			case 6:
				cp := pipeAligned(len(mem))
				copy(cp, mem)
				for end := range 2 {
					// Free the end so the attach gets past the claim.
					copy(cp[pipeEndsOff+end*pipeEndSize:], make([]byte, 8))
					c, err := AttachPipe(cp, end, opts)
					check("AttachPipe", 0, err, 0)
					if err == nil {
						n, err := c.TryRecv(buf)
						check("TryRecv on attached", n, err, len(buf))
						check("TrySend on attached", 0, c.TrySend(msg[:10]), 0)
						c.State()
					}
				}
			case 7:
				n, err := b.RecvTimeout(buf, 100*time.Microsecond)
				check("RecvTimeout", n, err, len(buf))
			case 8:
				check("SendTimeout", 0, a.SendTimeout(msg[:40], 100*time.Microsecond), 0)
			}
		}
	})
}
