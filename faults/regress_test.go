//go:build linux

package faults_test

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// Regression tests of defects the campaign found in other packages, each
// named after what it caught. All are fixed and run by default; a new
// defect whose fix is pending goes behind knownDefect (-faults.known).

// notRecoverableWord is a robust lock word (internal/robust layout) that is
// free and not recoverable: bit 29, no holder. mpipc writes it only when a
// holder that took the lock over from a dead owner releases it without
// Consistent; a peer writing garbage can write it at any time.
const notRecoverableWord = 1 << 29

func panicOf(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

// TestRegressionValueStorePanicsOnScribbledWriterLock: a Value wider than 8
// bytes keeps a private writer lock (offset 40). A peer that writes a
// not-recoverable word there makes every Store, Swap and Update of every
// process panic ("value: writer lock: mpipc: lock is not recoverable",
// value/cell.go lockWriter), and one that clears it under a writer makes
// unlockWriter panic. DESIGN.md: shared memory written by a hostile peer
// must never make this process panic. Found by TestHostilePeer/value.
func TestRegressionValueStorePanicsOnScribbledWriterLock(t *testing.T) {
	n, _ := value.SizeOf[quad]()
	mem := alignedCopy(nil, n)
	v, err := value.Init(mem, quad{1, 1, 1, 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[40])), notRecoverableWord)
	if r := panicOf(func() { v.Store(quad{2, 2, 2, 2}) }); r != nil {
		t.Errorf("Store on a scribbled writer lock panicked: %v", r)
	}
	if r := panicOf(func() { v.Swap(quad{3, 3, 3, 3}) }); r != nil {
		t.Errorf("Swap on a scribbled writer lock panicked: %v", r)
	}
}

// TestRegressionArrayAtPanicsOnScribbledLock: an Array's element methods
// (At, Set, CopyIn, CopyOut, Slice, All) panic when the lock cannot be
// acquired (array/array.go, func (a *Array[T]) lock, "array: acquiring
// lock: ..."). A peer writing a not-recoverable word into the own lock
// (offset 64) makes every element access of every process panic. Found by
// TestHostilePeer/array.
func TestRegressionArrayAtPanicsOnScribbledLock(t *testing.T) {
	n, _ := array.SizeOf[int64](4)
	mem := alignedCopy(nil, n)
	a, err := array.Init[int64](mem, 4, []int64{1, 2, 3, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[64])), notRecoverableWord)
	if r := panicOf(func() { _ = a.At(0) }); r != nil {
		t.Errorf("At on a scribbled lock panicked: %v", r)
	}
	if r := panicOf(func() { a.Set(0, 9) }); r != nil {
		t.Errorf("Set on a scribbled lock panicked: %v", r)
	}
}

// TestRegressionValueUpdatePanicsWhenWriterLockClearedUnderIt: a peer that
// clears the writer lock word while a writer holds it (here fn does, as a
// peer could at that moment) makes unlockWriter panic ("value: writer
// lock: mpipc: release of unlocked lock", value/cell.go unlockWriter).
// Found by TestHostilePeer/value.
func TestRegressionValueUpdatePanicsWhenWriterLockClearedUnderIt(t *testing.T) {
	n, _ := value.SizeOf[quad]()
	mem := alignedCopy(nil, n)
	v, err := value.Init(mem, quad{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := panicOf(func() {
		v.Update(func(q *quad) {
			atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[40])), 0)
			q.A++
		})
	})
	if r != nil {
		t.Errorf("Update whose writer lock was cleared by a peer panicked: %v", r)
	}
}

// TestRegressionArrayUpdatePanicsWhenLockClearedUnderIt: a peer that clears
// the own lock word (offset 64) while an element method holds it makes the
// release panic ("array: releasing lock: mpipc: release of unlocked lock",
// array/array.go, func (a *Array[T]) unlock). Found by
// TestHostilePeer/array.
func TestRegressionArrayUpdatePanicsWhenLockClearedUnderIt(t *testing.T) {
	n, _ := array.SizeOf[int64](4)
	mem := alignedCopy(nil, n)
	a, err := array.Init[int64](mem, 4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := panicOf(func() {
		a.Update(0, 4, func(s []int64) {
			atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[64])), 0)
			s[0]++
		})
	})
	if r != nil {
		t.Errorf("Update whose lock was cleared by a peer panicked: %v", r)
	}
}

// TestRegressionArrayZeroLengthPanics: an Array of length 0 (Python's
// Array('i', 0)) in exactly SizeOf(0) = 128 bytes panics with "index out of
// range [128] with length 128" in Init, Create and Attach: array/array.go
// core.setup takes &mem[headerSize] to build the element slice, one past
// the memory when there are no elements. Attach on hostile bytes (length
// word 0) panics the same way. Found by FuzzArrayAttach (input below).
func TestRegressionArrayZeroLengthPanics(t *testing.T) {
	n, err := array.SizeOf[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	if r := panicOf(func() { array.Init[int64](alignedCopy(nil, n), 0, nil, nil) }); r != nil {
		t.Errorf("Init of a zero-length Array panicked: %v", r)
	}
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if r := panicOf(func() { array.Create[int64](seg, "a", 0, nil, nil) }); r != nil {
		t.Errorf("Create of a zero-length Array panicked: %v", r)
	}
	// The fuzzer's input: magic "mpar", version 1, length 0, element size
	// 8, the fingerprint of int64, flags 1 (own lock), then '0' bytes to
	// 128 in all.
	in := make([]byte, n)
	for i := range in {
		in[i] = '0'
	}
	copy(in, "mpar")
	binary.LittleEndian.PutUint32(in[4:], 1)
	binary.LittleEndian.PutUint64(in[8:], 0)
	binary.LittleEndian.PutUint64(in[16:], 8)
	copy(in[24:], "\xad!\xe8W\xac\xce\xcdB")
	binary.LittleEndian.PutUint32(in[32:], 1)
	if r := panicOf(func() { array.Attach[int64](alignedCopy(in, 0), nil) }); r != nil {
		t.Errorf("Attach on a zero-length Array panicked: %v", r)
	}
	if r := panicOf(func() { array.AttachRaw[int64](alignedCopy(in, 0)) }); r != nil {
		t.Errorf("AttachRaw on a zero-length Array panicked: %v", r)
	}
}
