//go:build linux

package semaphore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// counters is the raw-bytes object that holds a test's shared counters
// when the semaphore lives in a segment.
var counters = shm.Spec{Name: "counters", Kind: shm.KindBytes, KindVersion: 1, Size: memSize}

func newSegment(t testing.TB) (string, *shm.Segment) {
	seg, name := regtest.Segment(t)
	return name, seg
}

// newSemSeg creates a segment with a Semaphore named "sem" and the
// counters object; children find both by the segment's name.
func newSemSeg(t testing.TB, value int) (string, []byte, *semaphore.Semaphore) {
	t.Helper()
	name, seg := newSegment(t)
	mem, err := seg.Alloc(counters, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := semaphore.Create(seg, "sem", value, nil)
	if err != nil {
		t.Fatal(err)
	}
	return name, mem, s
}

// openChild opens what newSemSeg (a segment name) or newSem (a file path,
// starting with "/") made.
func openChild(loc string) ([]byte, *semaphore.Semaphore, error) {
	if strings.HasPrefix(loc, "/") {
		return attachChild(loc)
	}
	seg, err := shm.Open(loc, nil)
	if err != nil {
		return nil, nil, err
	}
	mem, err := seg.Lookup(counters)
	if err != nil {
		return nil, nil, err
	}
	s, err := semaphore.Open(seg, "sem", nil)
	return mem, s, err
}

func TestCreateOpen(t *testing.T) {
	_, seg := newSegment(t)
	s, err := semaphore.Create(seg, "s", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := semaphore.Open(seg, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Acquire(context.Background())
	if o.Value() != 1 {
		t.Fatalf("opened handle sees value %d, want 1", o.Value())
	}
	b, err := semaphore.CreateBounded(seg, "b", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := semaphore.OpenBounded(seg, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Release(1); !errors.Is(err, semaphore.ErrReleasedTooMany) {
		t.Fatalf("over-release through Open = %v", err)
	}
	b.Acquire(context.Background())
	if ob.Value() != 0 {
		t.Fatal("bounded handles do not share the value")
	}

	for _, tc := range []struct {
		what string
		err  error
		want error
	}{
		{"Create of a taken name", second(semaphore.Create(seg, "s", 1, nil)), shm.ErrExist},
		{"CreateBounded of a taken name", second(semaphore.CreateBounded(seg, "s", 1, nil)), shm.ErrExist},
		{"Create with a negative value", second(semaphore.Create(seg, "neg", -1, nil)), semaphore.ErrNegative},
		{"CreateBounded with a negative value", second(semaphore.CreateBounded(seg, "negb", -1, nil)), semaphore.ErrNegative},
		{"Open of a missing name", second(semaphore.Open(seg, "nothing", nil)), shm.ErrNotExist},
		{"OpenBounded of a missing name", second(semaphore.OpenBounded(seg, "nothing", nil)), shm.ErrNotExist},
		{"Open of a BoundedSemaphore", second(semaphore.Open(seg, "b", nil)), shm.ErrKindMismatch},
		{"OpenBounded of a Semaphore", second(semaphore.OpenBounded(seg, "s", nil)), shm.ErrKindMismatch},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s = %v, want %v", tc.what, tc.err, tc.want)
		}
	}
	if _, err := seg.Alloc(shm.Spec{Name: "raw", Kind: shm.KindBytes, KindVersion: 1, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := semaphore.Open(seg, "raw", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Errorf("Open of raw bytes = %v, want ErrKindMismatch", err)
	}
	// The failed Create with a negative value left the name free.
	if _, err := semaphore.Create(seg, "neg", 0, nil); err != nil {
		t.Errorf("Create after a failed Create: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
