package ringbuf

import (
	"context"
	"fmt"

	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// SimpleQueue is Python's multiprocessing.SimpleQueue: Put, Get, Empty
// and Close, nothing else. It is a Queue underneath (same layout, with a
// flag, and kind shm.KindSimpleQueue in a segment), so it is as fast and
// as robust against killed processes; it only offers less.
//
// Close releases this handle, as Python's SimpleQueue.close closes this
// process's ends of its pipe: the queue itself goes on for every other
// handle and process. After Close, Put and Get on this handle return
// ErrClosed, and Empty returns (false, ErrClosed) where Python's empty()
// raises OSError ("handle is closed"): an error to check, not a panic, as
// Go reports a closed handle.
//
// Python's SimpleQueue has no size; this one holds DefaultCapacity
// messages when created with a capacity of 0 or less (see the package
// documentation), and Put blocks while it is full.
type SimpleQueue struct {
	q *Queue
}

// Stats returns this process's contention counters for this handle: the
// underlying Queue's (see Queue.Stats).
func (s *SimpleQueue) Stats() stats.Stats { return s.q.Stats() }

// SizeOfSimple returns the bytes a SimpleQueue takes: SizeOf(capacity,
// maxMsg).
func SizeOfSimple(capacity, maxMsg int) int { return qSize(capacity, maxMsg, qFlagSimple) }

// InitSimple initializes an empty SimpleQueue in mem; see Init.
func InitSimple(mem []byte, capacity, maxMsg int, opts *Options) (*SimpleQueue, error) {
	q, err := qInit(mem, capacity, maxMsg, qFlagSimple, 0, opts)
	if err != nil {
		return nil, err
	}
	return &SimpleQueue{q: q}, nil
}

// AttachSimple returns a handle on a SimpleQueue that InitSimple set up in
// mem. It fails with shm.ErrKindMismatch for another kind of queue.
func AttachSimple(mem []byte, opts *Options) (*SimpleQueue, error) {
	q, err := Attach(mem, opts)
	if err != nil {
		return nil, err
	}
	return qSimple(q, "")
}

func qSimple(q *Queue, name string) (*SimpleQueue, error) {
	if *u32at(q.mem, qOffFlags) != qFlagSimple {
		return nil, fmt.Errorf("ringbuf: queue %q is not a SimpleQueue: %w", name, shm.ErrKindMismatch)
	}
	return &SimpleQueue{q: q}, nil
}

// CreateSimple places a new SimpleQueue named name in seg (kind
// shm.KindSimpleQueue). A capacity of 0 or less means DefaultCapacity.
func CreateSimple(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*SimpleQueue, error) {
	q, err := qCreate(seg, name, shm.KindSimpleQueue, capacity, maxMsg, qFlagSimple, 0, opts)
	if err != nil {
		return nil, err
	}
	return &SimpleQueue{q: q}, nil
}

// OpenSimple attaches to the SimpleQueue named name in seg.
func OpenSimple(seg *shm.Segment, name string, opts *Options) (*SimpleQueue, error) {
	q, err := qOpen(seg, name, shm.KindSimpleQueue, 0, opts)
	if err != nil {
		return nil, err
	}
	return qSimple(q, name)
}

// OpenOrCreateSimple opens the SimpleQueue named name in seg, creating it
// with capacity and maxMsg if it does not exist, in one race-free call
// (see shm.OrOpen).
func OpenOrCreateSimple(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*SimpleQueue, error) {
	return shm.OrOpen(func() (*SimpleQueue, error) { return CreateSimple(seg, name, capacity, maxMsg, opts) },
		func() (*SimpleQueue, error) { return OpenSimple(seg, name, opts) })
}

// Put puts msg into the queue, waiting while it is full until ctx is done
// (nil: never). Errors as for Queue.Put; ErrClosed after this handle's
// Close.
func (s *SimpleQueue) Put(ctx context.Context, msg []byte) error {
	return s.q.Put(ctx, msg)
}

// Get removes and returns the next message, waiting while the queue is
// empty until ctx is done (nil: never). Errors as for Queue.Get;
// ErrClosed after this handle's Close.
func (s *SimpleQueue) Get(ctx context.Context) ([]byte, error) {
	return s.q.Get(ctx)
}

// Empty reports whether the queue holds no message (a snapshot). After
// this handle's Close it returns false and ErrClosed (Python raises
// OSError there).
func (s *SimpleQueue) Empty() (bool, error) {
	if s.q.Closed() {
		return false, ErrClosed
	}
	return s.q.Empty(), nil
}

// Close releases this handle: its later calls, and its calls blocked in
// Put or Get, return ErrClosed. Other handles, in this process or others,
// are not affected, and the queue keeps its messages (see Queue.Close).
// Closing twice returns nil.
func (s *SimpleQueue) Close() error { return s.q.Close() }
