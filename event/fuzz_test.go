//go:build linux

package event_test

import (
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/event"
)

func aligned(b []byte, n int) []byte {
	buf := make([]byte, max(n, len(b))+64)
	off := 64 - int(uintptr(unsafe.Pointer(&buf[0]))%64)
	mem := buf[off : off+max(n, len(b))]
	copy(mem, b)
	return mem
}

// FuzzAttach: Attach on arbitrary bytes gives an error or a handle whose
// non-blocking operations neither panic nor hang.
func FuzzAttach(f *testing.F) {
	mem := aligned(nil, event.Size)
	event.Init(mem, nil)
	f.Add(append([]byte(nil), mem...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := aligned(b, 0)
		if len(b) == 0 {
			mem = nil
		}
		e, err := event.Attach(mem, nil)
		if err != nil {
			return
		}
		_ = e.IsSet()
		e.WaitTimeout(0)
		e.Set()
		if !e.WaitTimeout(0) {
			t.Fatal("WaitTimeout after Set = false")
		}
		e.Clear()
		_ = e.State()
	})
}
