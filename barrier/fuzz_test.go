//go:build linux

package barrier_test

import (
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
)

func aligned(b []byte, n int) []byte {
	buf := make([]byte, max(n, len(b))+64)
	off := 64 - int(uintptr(unsafe.Pointer(&buf[0]))%64)
	mem := buf[off : off+max(n, len(b))]
	copy(mem, b)
	return mem
}

// FuzzAttach: Attach on arbitrary bytes gives an error or a handle whose
// operations with a zero timeout neither panic nor hang.
func FuzzAttach(f *testing.F) {
	for _, parties := range []int{1, 2, 5} {
		mem := aligned(nil, barrier.SizeOf(parties, 0))
		b, _ := barrier.Init(mem, parties, nil)
		b.Close()
		f.Add(append([]byte(nil), mem...))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := aligned(raw, 0)
		if len(raw) == 0 {
			mem = nil
		}
		b, err := barrier.Attach(mem, nil)
		if err != nil {
			return
		}
		defer b.Close()
		_ = b.State()
		_ = b.NWaiting()
		if idx, err := b.WaitTimeout(0); err == nil && (idx < 0 || idx >= b.Parties()) {
			t.Fatalf("index %d of %d parties", idx, b.Parties())
		}
		b.Abort()
		b.Reset()
		_ = b.Broken()
	})
}
