package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
)

// JoinableQueue is a Queue that counts unfinished tasks: Python's
// multiprocessing.JoinableQueue. Every Put adds a task; a consumer calls
// TaskDone once for each message it took when it has finished with it;
// Join waits until every task put has been done. All Queue methods are
// available on it.
type JoinableQueue struct {
	*Queue
}

// SizeOfJoinable returns the bytes a JoinableQueue takes: SizeOf(capacity,
// maxMsg), the joinable counters live in the header.
func SizeOfJoinable(capacity, maxMsg int) int { return SizeOf(capacity, maxMsg) }

// InitJoinable initializes an empty JoinableQueue in mem; see Init.
func InitJoinable(mem []byte, capacity, maxMsg int, opts *Options) (*JoinableQueue, error) {
	q, err := qInit(mem, capacity, maxMsg, qFlagJoinable, 0, opts)
	if err != nil {
		return nil, err
	}
	return &JoinableQueue{q}, nil
}

// AttachJoinable returns a handle on a JoinableQueue that InitJoinable set
// up in mem. It fails with shm.ErrKindMismatch for a plain Queue.
func AttachJoinable(mem []byte, opts *Options) (*JoinableQueue, error) {
	q, err := Attach(mem, opts)
	if err != nil {
		return nil, err
	}
	if !q.joinable {
		return nil, fmt.Errorf("ringbuf: queue is not joinable: %w", shm.ErrKindMismatch)
	}
	return &JoinableQueue{q}, nil
}

// CreateJoinable places a new JoinableQueue named name in seg (kind
// shm.KindJoinableQueue).
func CreateJoinable(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*JoinableQueue, error) {
	q, err := qCreate(seg, name, shm.KindJoinableQueue, capacity, maxMsg, qFlagJoinable, 0, opts)
	if err != nil {
		return nil, err
	}
	return &JoinableQueue{q}, nil
}

// OpenJoinable attaches to the JoinableQueue named name in seg.
func OpenJoinable(seg *shm.Segment, name string, opts *Options) (*JoinableQueue, error) {
	q, err := qOpen(seg, name, shm.KindJoinableQueue, 0, opts)
	if err != nil {
		return nil, err
	}
	if !q.joinable {
		return nil, fmt.Errorf("ringbuf: opening %q: queue is not joinable: %w", name, shm.ErrKindMismatch)
	}
	return &JoinableQueue{q}, nil
}

func (j *JoinableQueue) unfinishedWord() *uint32 { return (*uint32)(unsafe.Pointer(j.Queue.join)) }

// TaskDone marks one task taken from the queue as finished. It returns
// ErrTaskDone, changing nothing, when called more times than messages were
// taken. When the last unfinished task is done, every Join returns.
func (j *JoinableQueue) TaskDone() error {
	for {
		w := atomic.LoadUint64(j.Queue.join)
		unfinished, taken := uint32(w), uint32(w>>32)
		if taken == 0 {
			return ErrTaskDone
		}
		if unfinished == 0 {
			return fmt.Errorf("ringbuf: %d tasks taken but none unfinished: %w", taken, shm.ErrCorrupt)
		}
		nw := w - 1 - 1<<32
		// Publishes one task done (and, at zero, that Join may return).
		if atomic.CompareAndSwapUint64(j.Queue.join, w, nw) {
			if uint32(nw) == 0 && atomic.LoadUint32(j.joinWaiters) != 0 {
				futex.WakeAll(j.unfinishedWord())
			}
			return nil
		}
	}
}

// Unfinished returns the number of tasks put and not yet done.
func (j *JoinableQueue) Unfinished() int { return int(atomic.LoadUint32(j.unfinishedWord())) }

// Join waits until every task put into the queue has been done, or ctx is
// done (nil: never; then ctx.Err()).
func (j *JoinableQueue) Join(ctx context.Context) error {
	_, err := j.joinWait(ctx, time.Time{}, false)
	return err
}

// JoinTimeout waits at most d for every task to be done and reports
// whether they were. A d of zero or less does not wait.
func (j *JoinableQueue) JoinTimeout(d time.Duration) (bool, error) {
	if d <= 0 {
		return j.joinWait(nil, time.Time{}, true)
	}
	return j.joinWait(nil, futex.After(d), false)
}

// TryJoin reports whether every task put has been done, without waiting.
func (j *JoinableQueue) TryJoin() (bool, error) { return j.joinWait(nil, time.Time{}, true) }

func (j *JoinableQueue) joinWait(ctx context.Context, deadline time.Time, try bool) (bool, error) {
	word := j.unfinishedWord()
	for {
		v := atomic.LoadUint32(word)
		if v == 0 {
			return true, nil
		}
		if try {
			return false, nil
		}
		atomic.AddUint32(j.joinWaiters, 1) // announces a sleeper to TaskDone
		if v = atomic.LoadUint32(word); v == 0 {
			atomic.AddUint32(j.joinWaiters, ^uint32(0))
			return true, nil
		}
		wake := futex.After(j.check)
		if !deadline.IsZero() && deadline.Before(wake) {
			wake = deadline
		}
		err := futex.Wait(ctx, word, v, wake)
		atomic.AddUint32(j.joinWaiters, ^uint32(0))
		switch {
		case err == nil:
		case err == futex.ErrTimeout:
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return atomic.LoadUint32(word) == 0, nil
			}
		default:
			return false, err
		}
	}
}
