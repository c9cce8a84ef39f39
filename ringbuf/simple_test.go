//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	roles["q-simple-peer"] = qRoleSimplePeer
}

func TestSimpleQueue(t *testing.T) {
	mem := qAligned(SizeOfSimple(3, 16))
	s, err := InitSimple(mem, 3, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Empty(); !e || err != nil {
		t.Fatalf("new: Empty %v %v", e, err)
	}
	for i := range 3 {
		if err := s.Put(context.Background(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Put(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put into a full SimpleQueue of 3: %v", err)
	}
	if e, err := s.Empty(); e || err != nil {
		t.Fatalf("holding 3: Empty %v %v", e, err)
	}
	if err := s.Put(context.Background(), make([]byte, 17)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put too large: %v", err)
	}
	other, err := AttachSimple(mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Get(context.Background()); err != nil || m[0] != 0 {
		t.Fatalf("Get: %v %v", m, err)
	}
	// Close releases this handle only.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Put(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Get(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if e, err := s.Empty(); e || !errors.Is(err, ErrClosed) {
		t.Fatalf("Empty after Close: %v %v, want false, ErrClosed", e, err)
	}
	for i := 1; i < 3; i++ {
		if m, err := other.Get(context.Background()); err != nil || m[0] != byte(i) {
			t.Fatalf("other handle's Get: %v %v", m, err)
		}
	}
	if e, err := other.Empty(); !e || err != nil {
		t.Fatalf("other handle drained: Empty %v %v", e, err)
	}
	// Kinds are told apart in memory.
	pmem := qAligned(SizeOf(2, 8))
	if _, err := Init(pmem, 2, 8, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := AttachSimple(pmem, nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("AttachSimple on a plain queue: %v", err)
	}
	if _, err := AttachSimple(qAligned(100), nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("AttachSimple on short memory: %v", err)
	}
	if _, err := InitSimple(qAligned(4096), MaxCapacity+1, 8, nil); !errors.Is(err, ErrInvalidParam) {
		t.Fatalf("InitSimple beyond MaxCapacity: %v", err)
	}
}

// q-simple-peer SEGMENT N: opens "sq" by name, puts N numbered messages,
// gets N answers (each its number doubled), then closes its handle.
func qRoleSimplePeer(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	if _, err := Open(seg, "sq", nil); !errors.Is(err, shm.ErrKindMismatch) {
		return fmt.Errorf("Open of a SimpleQueue: %v, want ErrKindMismatch", err)
	}
	req, err := OpenSimple(seg, "sq", nil)
	if err != nil {
		return err
	}
	ans, err := OpenOrCreateSimple(seg, "answers", 0, 16, nil)
	if err != nil {
		return err
	}
	n := atoi(args[1])
	for i := range n {
		if err := req.Put(context.Background(), []byte(strconv.Itoa(i))); err != nil {
			return err
		}
	}
	for i := range n {
		m, err := ans.Get(context.Background())
		if err != nil {
			return err
		}
		if string(m) != strconv.Itoa(2*i) {
			return fmt.Errorf("answer %d: %q", i, m)
		}
	}
	if err := req.Close(); err != nil {
		return err
	}
	if e, err := req.Empty(); !errors.Is(err, ErrClosed) {
		return fmt.Errorf("Empty after Close: %v %v", e, err)
	}
	fmt.Println("done")
	return nil
}

// TestSimpleQueueProcesses: a SimpleQueue by name between two processes;
// the child's Close of its handle leaves the parent's working.
func TestSimpleQueueProcesses(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	req, err := CreateSimple(seg, "sq", 6, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := OpenOrCreateSimple(seg, "answers", 0, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJoinable(seg, "sq", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("OpenJoinable of a SimpleQueue: %v", err)
	}
	const n = 200 // more than the capacity: both sides block in turn
	c := proctest.Start(t, "q-simple-peer", name, strconv.Itoa(n))
	for range n {
		m, err := req.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		i, err := strconv.Atoi(string(m))
		if err != nil {
			t.Fatal(err)
		}
		if err := ans.Put(context.Background(), []byte(strconv.Itoa(2*i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Expect("done", 0)
	c.WaitOK()
	// The child closed its handle; this one still works.
	if err := req.Put(context.Background(), []byte("after")); err != nil {
		t.Fatalf("Put after the child's Close: %v", err)
	}
	if m, err := req.Get(context.Background()); err != nil || string(m) != "after" {
		t.Fatalf("Get after the child's Close: %q %v", m, err)
	}
	if e, err := req.Empty(); !e || err != nil {
		t.Fatalf("Empty: %v %v", e, err)
	}
}
