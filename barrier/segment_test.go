//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/shm"
)

// counters is the raw-bytes object that holds a test's shared counters
// when the barrier lives in a segment.
var counters = shm.Spec{Name: "counters", Kind: shm.KindBytes, KindVersion: 1, Size: memSize}

func newSegment(t testing.TB) (string, *shm.Segment) {
	seg, name := regtest.Segment(t)
	return name, seg
}

// newBarrierSeg creates a segment with a Barrier named "bar" and the
// counters object; children find both by the segment's name.
func newBarrierSeg(t testing.TB, parties int, opts *barrier.Options) (string, []byte, *barrier.Barrier) {
	t.Helper()
	name, seg := newSegment(t)
	mem, err := seg.Alloc(counters, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Create(seg, "bar", parties, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return name, mem, b
}

// openChild opens what newBarrierSeg (a segment name) or newBarrier (a
// file path, starting with "/") made.
func openChild(loc string, opts *barrier.Options) ([]byte, *barrier.Barrier, error) {
	if strings.HasPrefix(loc, "/") {
		return attachChild(loc, opts)
	}
	seg, err := shm.Open(loc, nil)
	if err != nil {
		return nil, nil, err
	}
	mem, err := seg.Lookup(counters)
	if err != nil {
		return nil, nil, err
	}
	b, err := barrier.Open(seg, "bar", opts)
	return mem, b, err
}

func TestCreateOpen(t *testing.T) {
	_, seg := newSegment(t)
	b, err := barrier.Create(seg, "b", 2, &barrier.Options{Handles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o, err := barrier.Open(seg, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Parties() != 2 || len(o.State().Registered) != 2 {
		t.Fatalf("opened handle: parties %d, state %+v", o.Parties(), o.State())
	}
	done := make(chan error)
	go func() { _, err := b.Wait(context.Background()); done <- err }()
	if _, err := o.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Slots: creator, o, and one more; then ErrTooManyHandles. An
	// observer needs no slot.
	o3, err := barrier.Open(seg, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := barrier.Open(seg, "b", nil); !errors.Is(err, barrier.ErrTooManyHandles) {
		t.Errorf("fourth handle of 3 = %v, want ErrTooManyHandles", err)
	}
	obs, err := barrier.Open(seg, "b", &barrier.Options{Observe: true})
	if err != nil {
		t.Fatalf("observer: %v", err)
	}
	if st := obs.State(); len(st.Registered) != 3 || st.Rounds != 1 {
		t.Fatalf("observer sees %+v", st)
	}
	obs.Close()
	o3.Close()
	o.Close()

	if _, err := barrier.Create(seg, "b", 2, nil); !errors.Is(err, shm.ErrExist) {
		t.Errorf("Create of a taken name = %v", err)
	}
	if _, err := barrier.Create(seg, "zero", 0, nil); !errors.Is(err, barrier.ErrInvalidParties) {
		t.Errorf("Create with 0 parties = %v", err)
	}
	if _, err := barrier.Open(seg, "nothing", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Errorf("Open of a missing name = %v", err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "raw", Kind: shm.KindBytes, KindVersion: 1, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := barrier.Open(seg, "raw", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Errorf("Open of raw bytes = %v, want ErrKindMismatch", err)
	}
}

// TestObserverDeathBreaksNothing: an observing handle's process may die
// without breaking the barrier.
func TestObserverDeathBreaksNothing(t *testing.T) {
	name, _, b := newBarrierSeg(t, 2, &barrier.Options{CheckInterval: 20 * time.Millisecond})
	c := proctest.Start(t, "observer", name)
	c.Expect(proctest.Ready, 0)
	c.Kill()
	<-c.Done()
	if _, err := b.WaitTimeout(300 * time.Millisecond); !errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("WaitTimeout = %v, want ErrTimedOut (not broken by the observer's death)", err)
	}
}
