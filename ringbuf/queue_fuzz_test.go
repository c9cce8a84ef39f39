//go:build linux

package ringbuf

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzQueueCorrupt runs a script of queue operations against a live queue
// and, between them, writes garbage words and bytes anywhere in the
// queue's memory (header, slot words, owner words, payloads), as a buggy
// peer could. Every operation must return (a value or an error), never
// panic, read or write outside the memory, or hang.
func FuzzQueueCorrupt(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 0, 0, 0, 0, 8, 3, 0, 0, 0, 0, 1, 1, 1})
	f.Add([]byte{0, 0, 9, 0x40, 0, 0, 0, 1, 0, 0, 0, 0xff, 1, 1, 6, 7})
	f.Add([]byte{0, 9, 0x41, 0x80, 0, 0, 0, 0x10, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{10, 0x44, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 1, 11})
	f.Fuzz(func(t *testing.T, script []byte) {
		const capacity, maxMsg = 4, 24
		mem := qAligned(SizeOf(capacity, maxMsg))
		q, err := Init(mem, capacity, maxMsg, &Options{CheckInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		q.budget = 256 // keep each attempt short; the bound is what is tested
		buf := make([]byte, maxMsg)
		msg := make([]byte, maxMsg)
		next := func() byte {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return b
		}
		for steps := 0; len(script) > 0 && steps < 200; steps++ {
			switch op := next() % 12; op {
			case 0:
				q.TryPut(msg[:int(next())%(maxMsg+1)])
			case 1:
				if m, err := q.TryGet(); err == nil && len(m) > maxMsg {
					t.Fatalf("message of %d bytes", len(m))
				}
			case 2:
				if n, err := q.TryGetInto(buf[:int(next())%(maxMsg+1)]); err == nil && n > maxMsg {
					t.Fatalf("message of %d bytes", n)
				}
			case 3:
				if r, err := q.TryReserve(int(next()) % (maxMsg + 1)); err == nil {
					copy(r.Bytes(), msg)
					if next()%2 == 0 {
						r.Commit()
					} else {
						r.Cancel()
					}
				}
			case 4:
				if b, err := q.TryBorrow(); err == nil {
					if len(b.Bytes()) > maxMsg {
						t.Fatalf("borrowed %d bytes", len(b.Bytes()))
					}
					b.Release()
				}
			case 5:
				q.PutTimeout(msg[:4], time.Millisecond)
				q.GetIntoTimeout(buf, time.Millisecond)
			case 6:
				q.Len()
				q.Empty()
				q.Full()
				q.State()
			case 7:
				q.Shutdown(next()&1 == 0)
			case 8, 9: // a garbage 64-bit word at an 8-byte aligned offset
				off := int(binary.LittleEndian.Uint16([]byte{next(), next()})) * 8 % len(mem)
				var w [8]byte
				for i := range w {
					w[i] = next()
				}
				copy(mem[off:], w[:])
			case 10: // a garbage byte anywhere
				off := int(binary.LittleEndian.Uint16([]byte{next(), next()})) % len(mem)
				mem[off] = next()
			case 11: // re-attach to whatever is there now
				if q2, err := Attach(mem, nil); err == nil {
					q2.budget = 256
					q2.TryGet()
					q2.TryPut(msg[:1])
				}
			}
		}
	})
}
