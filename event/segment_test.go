//go:build linux

package event_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/shm"
)

// counters is the raw-bytes object that holds a test's shared counters
// when the event lives in a segment.
var counters = shm.Spec{Name: "counters", Kind: shm.KindBytes, KindVersion: 1, Size: memSize}

func newSegment(t testing.TB) (string, *shm.Segment) {
	seg, name := regtest.Segment(t)
	return name, seg
}

// newEventSeg creates a segment with an Event named "ev" and the counters
// object; children find both by the segment's name.
func newEventSeg(t testing.TB) (string, []byte, *event.Event) {
	t.Helper()
	name, seg := newSegment(t)
	mem, err := seg.Alloc(counters, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := event.Create(seg, "ev", nil)
	if err != nil {
		t.Fatal(err)
	}
	return name, mem, e
}

// openChild opens what newEventSeg (a segment name) or newEvent (a file
// path, starting with "/") made.
func openChild(loc string) ([]byte, *event.Event, error) {
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
	e, err := event.Open(seg, "ev", nil)
	return mem, e, err
}

func TestCreateOpen(t *testing.T) {
	_, seg := newSegment(t)
	e, err := event.Create(seg, "e", nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := event.Open(seg, "e", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Set()
	if !o.IsSet() {
		t.Fatal("opened handle does not see Set")
	}
	o.Clear()
	if e.IsSet() {
		t.Fatal("created handle does not see Clear")
	}
	if _, err := event.Create(seg, "e", nil); !errors.Is(err, shm.ErrExist) {
		t.Errorf("Create of a taken name = %v", err)
	}
	if _, err := event.Open(seg, "nothing", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Errorf("Open of a missing name = %v", err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "raw", Kind: shm.KindBytes, KindVersion: 1, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := event.Open(seg, "raw", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Errorf("Open of raw bytes = %v, want ErrKindMismatch", err)
	}
}
