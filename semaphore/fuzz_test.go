//go:build linux

package semaphore_test

import (
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/semaphore"
)

// aligned copies b into a fresh 64-byte-aligned buffer of at least n bytes.
func aligned(b []byte, n int) []byte {
	buf := make([]byte, max(n, len(b))+64)
	off := 64 - int(uintptr(unsafe.Pointer(&buf[0]))%64)
	mem := buf[off : off+max(n, len(b))]
	copy(mem, b)
	return mem
}

// FuzzAttach: Attach and AttachBounded on arbitrary bytes give an error or
// a handle whose non-blocking operations neither panic nor hang.
func FuzzAttach(f *testing.F) {
	for _, bounded := range []bool{false, true} {
		mem := aligned(nil, semaphore.Size)
		if bounded {
			semaphore.InitBounded(mem, 3, nil)
		} else {
			semaphore.Init(mem, 3, nil)
		}
		f.Add(append([]byte(nil), mem...))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := aligned(b, 0)
		if len(b) == 0 {
			mem = nil
		}
		if s, err := semaphore.Attach(mem, nil); err == nil {
			s.TryAcquire()
			s.AcquireTimeout(0)
			s.Release(1)
			_ = s.Value()
			_ = s.State()
		}
		if s, err := semaphore.AttachBounded(mem, nil); err == nil {
			s.TryAcquire()
			if err := s.Release(1); err == nil && s.Value() > s.Bound() {
				t.Fatalf("value %d above bound %d", s.Value(), s.Bound())
			}
			_ = s.State()
		}
	})
}
