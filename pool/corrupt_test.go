//go:build linux

package pool

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mpipc/mpipc/shm"
)

var corruptSquare = NewFunc("test.internal.square", func(x int64) (int64, error) { return x * x, nil })

// TestCorruptResults: a result message that does not match its chunk, or
// whose items run past its end or have the wrong size, fails the chunk's
// tasks with shm.ErrCorrupt instead of being trusted.
func TestCorruptResults(t *testing.T) {
	p := &Pool{n: 1, opts: Options{MaxMsg: DefaultMaxMsg}}
	item := func(n uint32, body ...byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, n)
		return append(b, body...)
	}
	good := item(8, 1, 0, 0, 0, 0, 0, 0, 0)
	cases := []struct {
		name   string
		body   []byte
		n, fit int
	}{
		{"count of another chunk", good, 3, 1},
		{"more results than tasks", good, 2, 3},
		{"item past the end", item(100, 1, 2), 2, 1},
		{"header past the end", []byte{1, 2}, 2, 1},
		{"item of the wrong size", item(4, 1, 2, 3, 4), 2, 1},
	}
	for _, c := range cases {
		b, _, err := newBatch(p, corruptSquare, []int64{1, 2}, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		b.deliver(0, 2, c.body, c.n, c.fit)
		select {
		case <-b.done:
		default:
			t.Fatalf("%s: the chunk is not finished", c.name)
		}
		if err := b.err(); !errors.Is(err, shm.ErrCorrupt) {
			t.Fatalf("%s: %v, want shm.ErrCorrupt", c.name, err)
		}
	}
	// A good message: one result fits, the other comes back to run again.
	b, res, _ := newBatch(p, corruptSquare, []int64{1, 2}, 2, false)
	if lo, hi := b.deliver(0, 2, good, 2, 1); lo != 1 || hi != 2 || res[0] != 1 {
		t.Fatalf("partial result: rest %d..%d, result %d", lo, hi, res[0])
	}
}
