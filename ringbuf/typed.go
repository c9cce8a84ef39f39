package ringbuf

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
)

// Typed is a queue of values of a fixed-size, pointer-free type T, stored
// directly in the slots (no encoding): a Queue whose messages are exactly
// one T. The element type's fingerprint is stored at creation and checked
// at Open and Attach, so a process that opens the queue with another T
// gets shm.ErrTypeMismatch instead of garbage. All Queue methods for
// inspection, Close, Shutdown and Restart are available through the
// embedded Queue; use the typed Put and Get.
type Typed[T any] struct {
	*Queue
}

func typedInfo[T any]() (typeinfo.Info, error) {
	ti, err := typeinfo.Of[T]()
	if err != nil {
		return ti, fmt.Errorf("ringbuf: typed queue: %w", err)
	}
	if ti.Size > MaxMsgLimit || ti.Align > 8 {
		return ti, fmt.Errorf("ringbuf: typed queue: element of %d bytes, alignment %d: %w", ti.Size, ti.Align, ErrInvalidParam)
	}
	return ti, nil
}

// SizeOfTyped returns the bytes a Typed[T] of the given capacity takes, or
// -1 if T or capacity is not accepted.
func SizeOfTyped[T any](capacity int) int {
	ti, err := typedInfo[T]()
	if err != nil {
		return -1
	}
	return SizeOf(capacity, int(ti.Size))
}

// InitTyped initializes an empty Typed[T] queue in mem; see Init.
func InitTyped[T any](mem []byte, capacity int, opts *Options) (*Typed[T], error) {
	ti, err := typedInfo[T]()
	if err != nil {
		return nil, err
	}
	q, err := qInit(mem, capacity, int(ti.Size), qFlagTyped, ti.Fingerprint, opts)
	if err != nil {
		return nil, err
	}
	return &Typed[T]{q}, nil
}

// AttachTyped returns a handle on a Typed[T] that InitTyped set up in mem.
// It fails with shm.ErrTypeMismatch if the queue holds another type.
func AttachTyped[T any](mem []byte, opts *Options) (*Typed[T], error) {
	ti, err := typedInfo[T]()
	if err != nil {
		return nil, err
	}
	q, err := Attach(mem, opts)
	if err != nil {
		return nil, err
	}
	if err := typedCheck(q, ti); err != nil {
		return nil, err
	}
	return &Typed[T]{q}, nil
}

func typedCheck(q *Queue, ti typeinfo.Info) error {
	flags := *u32at(q.mem, qOffFlags)
	fp := *u64at(q.mem, qOffFingerprint)
	if flags&qFlagTyped == 0 || fp != ti.Fingerprint || q.maxMsg != int(ti.Size) {
		return fmt.Errorf("ringbuf: queue holds type %#x of %d bytes, want %s (%#x): %w", fp, q.maxMsg, ti.Desc, ti.Fingerprint, shm.ErrTypeMismatch)
	}
	return nil
}

// CreateTyped places a new Typed[T] queue named name in seg (kind
// shm.KindQueue, with T's fingerprint).
func CreateTyped[T any](seg *shm.Segment, name string, capacity int, opts *Options) (*Typed[T], error) {
	ti, err := typedInfo[T]()
	if err != nil {
		return nil, err
	}
	q, err := qCreate(seg, name, shm.KindQueue, capacity, int(ti.Size), qFlagTyped, ti.Fingerprint, opts)
	if err != nil {
		return nil, err
	}
	return &Typed[T]{q}, nil
}

// OpenTyped attaches to the Typed[T] queue named name in seg; a queue of
// another element type gives shm.ErrTypeMismatch.
func OpenTyped[T any](seg *shm.Segment, name string, opts *Options) (*Typed[T], error) {
	ti, err := typedInfo[T]()
	if err != nil {
		return nil, err
	}
	q, err := qOpen(seg, name, shm.KindQueue, ti.Fingerprint, opts)
	if err != nil {
		return nil, err
	}
	if err := typedCheck(q, ti); err != nil {
		return nil, err
	}
	return &Typed[T]{q}, nil
}

// OpenOrCreateTyped opens the Typed[T] queue (capacity is used only if it creates it) named name in seg, creating it if it does
// not exist, in one race-free call: of several processes calling it at
// once one creates the object and the others open it (see shm.OrOpen).
func OpenOrCreateTyped[T any](seg *shm.Segment, name string, capacity int, opts *Options) (*Typed[T], error) {
	return shm.OrOpen(func() (*Typed[T], error) { return CreateTyped[T](seg, name, capacity, opts) },
		func() (*Typed[T], error) { return OpenTyped[T](seg, name, opts) })
}

func (t *Typed[T]) put(ctx context.Context, v T, d time.Duration, try bool) error {
	q := t.Queue
	for {
		s, pos, err := q.putClaim(ctx, q.maxMsg, d, try)
		if err != nil {
			return err
		}
		*(*T)(unsafe.Add(s, qSlotHeader)) = v
		if q.commitPut(s, pos, q.maxMsg) {
			return nil
		}
	}
}

// Put puts v, waiting while the queue is full until ctx is done (nil:
// never). Errors as for Queue.Put.
func (t *Typed[T]) Put(ctx context.Context, v T) error { return t.put(ctx, v, 0, false) }

// PutTimeout is Put waiting at most d (ErrFull after that); d <= 0 tries once.
func (t *Typed[T]) PutTimeout(v T, d time.Duration) error {
	return t.put(context.Background(), v, d, d <= 0)
}

// TryPut puts v if there is room now, else returns ErrFull.
func (t *Typed[T]) TryPut(v T) error { return t.put(context.Background(), v, 0, true) }

func (t *Typed[T]) get(ctx context.Context, d time.Duration, try bool) (v T, err error) {
	q := t.Queue
	for {
		s, pos, n, w, err := q.getClaim(ctx, -1, d, try, !qOptimisticGet)
		if err != nil {
			return v, err
		}
		if n != q.maxMsg {
			if !q.finishGet(s, pos, w) && qOptimisticGet {
				continue
			}
			return v, fmt.Errorf("ringbuf: typed message of %d bytes, want %d: %w", n, q.maxMsg, shm.ErrCorrupt)
		}
		v = *(*T)(unsafe.Add(s, qSlotHeader))
		if q.finishGet(s, pos, w) {
			return v, nil
		}
		if !qOptimisticGet {
			var zero T
			return zero, errReclaimed
		}
	}
}

// Get removes and returns the next value, waiting while the queue is
// empty until ctx is done (nil: never). Errors as for Queue.Get.
func (t *Typed[T]) Get(ctx context.Context) (T, error) { return t.get(ctx, 0, false) }

// GetTimeout is Get waiting at most d (ErrEmpty after that); d <= 0 tries once.
func (t *Typed[T]) GetTimeout(d time.Duration) (T, error) {
	return t.get(context.Background(), d, d <= 0)
}

// TryGet removes and returns the next value if there is one, else ErrEmpty.
func (t *Typed[T]) TryGet() (T, error) { return t.get(context.Background(), 0, true) }
