package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/shm"
)

// JoinableQueue is a Queue that counts unfinished tasks: Python's
// multiprocessing.JoinableQueue. Every message put is a task; a consumer
// calls TaskDone once for each message it took when it has finished with
// it; Join waits until every task put has been done. All Queue methods are
// available on it.
//
// # How tasks are counted
//
// Nothing counts puts. The unfinished tasks are the messages committed in
// the ring plus the tasks taken and not yet done, and the taken ones are
// counted per taking process, in a table of qJoinEntries taker entries
// after the slots: each holds the taker's claim id and its count in one
// 64-bit word. A consumer claims an entry at its first take (a free one,
// or one whose taker the process registry reports dead), counts each take
// in it before the compare-and-swap that takes the message, and takes the
// count back if that fails; so at every instant a message is in the ring
// or counted taken, never neither. TaskDone lowers the caller's entry.
//
// A process killed at any instruction leaves behind at most: a claimed,
// uncommitted slot (not yet a task; reclaimed as "skip" like any queue's),
// and an entry counting the tasks it took and had not done. Join counts a
// dead taker's tasks as done (it frees its entry), which is where Python's
// JoinableQueue hangs for ever. With more than qJoinEntries live takers at
// once, the takes of processes that find no entry are counted in one
// shared word instead ("loose"), which no death can clear: a taker killed
// then leaves its loose tasks unfinished, and Join waits for them as in
// Python (use JoinTimeout or a context).
type JoinableQueue struct {
	*Queue
}

// qJoinEntries is the number of taker entries of a joinable queue.
const qJoinEntries = 40

// qTakerSize is the size of one taker entry.
const qTakerSize = 16

// qTaker is a taker entry: word holds the taker's claim id (high half, 0
// when the entry is free) and the tasks it took and has not done (low
// half); owner its full registry identity, written after the claim, for
// an exact liveness check (as a slot's owner word).
type qTaker struct {
	word  uint64
	owner uint64
}

// SizeOfJoinable returns the bytes a JoinableQueue takes: SizeOf(capacity,
// maxMsg) plus 640 bytes of taker entries after the slots (-1 for
// parameters Init would reject).
func SizeOfJoinable(capacity, maxMsg int) int { return qSize(capacity, maxMsg, qFlagJoinable) }

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

// OpenOrCreateJoinable opens the JoinableQueue named name in seg, creating
// it with capacity and maxMsg if it does not exist, in one race-free call:
// of several processes calling it at once one creates the object and the
// others open it (see shm.OrOpen).
func OpenOrCreateJoinable(seg *shm.Segment, name string, capacity, maxMsg int, opts *Options) (*JoinableQueue, error) {
	return shm.OrOpen(func() (*JoinableQueue, error) { return CreateJoinable(seg, name, capacity, maxMsg, opts) },
		func() (*JoinableQueue, error) { return OpenJoinable(seg, name, opts) })
}

// takeTask counts one task taken by this process, before the take's
// compare-and-swap, and returns the word counted in (for untakeTask).
func (q *Queue) takeTask() *uint64 {
	if i := q.joinIdx.Load(); i >= 0 {
		w := &q.joinTab[i].word
		atomic.AddUint64(w, 1) // one more task taken and not yet done
		return w
	}
	return q.takeTaskSlow()
}

// takeTaskSlow claims a taker entry for this process and counts in it;
// with none to be had, it counts the task loose, and looks again every
// 256 loose takes.
func (q *Queue) takeTaskSlow() *uint64 {
	if q.joinIdx.Load() == -1 || q.joinMiss.Add(1)%256 == 0 {
		if i := q.claimTaker(); i >= 0 {
			q.joinIdx.Store(int32(i))
			w := &q.joinTab[i].word
			atomic.AddUint64(w, 1) // one more task taken and not yet done
			return w
		}
		q.joinIdx.Store(-2)
	}
	atomic.AddUint32(q.joinLoose, 1) // one more task taken and not yet done, by no entry
	return nil
}

// untakeTask takes back the count of a take whose compare-and-swap failed.
func (q *Queue) untakeTask(w *uint64) {
	if w == nil {
		atomic.AddUint32(q.joinLoose, ^uint32(0))
		return
	}
	atomic.AddUint64(w, ^uint64(0))
}

// claimTaker returns a taker entry for this process: one it holds
// already, a free one, or one of a dead taker (whose tasks count as done
// from then on); -1 if every entry is held by a live process.
func (q *Queue) claimTaker() int {
	me := uint64(q.selfClaim) << 32
	for i := range q.joinTab {
		if atomic.LoadUint64(&q.joinTab[i].word)&^(1<<32-1) == me {
			return i
		}
	}
	for pass := 0; pass < 2; pass++ {
		for i := range q.joinTab {
			t := &q.joinTab[i]
			w := atomic.LoadUint64(&t.word)
			if w != 0 && (pass == 0 || q.takerAlive(t, w)) {
				continue
			}
			// Claims the entry; a dead taker's count goes with it.
			if atomic.CompareAndSwapUint64(&t.word, w, me) {
				atomic.StoreUint64(&t.owner, q.selfPacked)
				return i
			}
		}
	}
	return -1
}

// takerAlive reports whether the taker of entry t, whose word was w, may
// be alive.
func (q *Queue) takerAlive(t *qTaker, w uint64) bool {
	claim := uint32(w >> 32)
	if claim == q.selfClaim {
		return true
	}
	if claim&qClaimFull != 0 {
		return false // no claim id has bit 31: garbage
	}
	return q.claimantAlive(claim, atomic.LoadUint64(&t.owner))
}

// takenNotDone returns the tasks taken and not yet done by live processes
// (and loose ones). It frees the entries of dead takers: their tasks count
// as done.
func (q *Queue) takenNotDone() int {
	n := int(atomic.LoadUint32(q.joinLoose))
	tries := 0 // bounded against a peer that rewrites an entry without end
	for i := 0; i < len(q.joinTab); i++ {
		t := &q.joinTab[i]
		w := atomic.LoadUint64(&t.word)
		if uint32(w) == 0 {
			continue
		}
		if q.takerAlive(t, w) {
			n += int(uint32(w))
			continue
		}
		// Frees the dead taker's entry: its tasks count as done.
		if !atomic.CompareAndSwapUint64(&t.word, w, 0) && tries < qEventTries {
			tries++
			i-- // it changed: look again
		}
	}
	return n
}

// committed returns the number of committed messages in the ring,
// scanning from the consumers' frontier to the first position no producer
// has claimed (at most capacity+1 slots). A message taken during the scan
// was counted taken before it left the ring.
func (q *Queue) committed() int {
	h, _ := q.getFrontier()
	n := 0
	for k := uint64(0); k <= uint64(q.capacity); k++ {
		p := h + k
		w := atomic.LoadUint64(qSlotWord(q.slot(p)))
		seq, claim := uint32(w), uint32(w>>32)
		switch d := seq - uint32(p); {
		case d == 1 && claim&(qClaimFull|qClaimSkip) == qClaimFull:
			n++ // a message
		case d == 1: // skipped, or a consumer reads it (counted taken)
		case d == 0 && claim != 0: // a producer writes it: not a task yet
		case d == q.capacity || d == q.capacity+1: // taken since the frontier was read
		default: // nothing claimed here yet (or garbage): the end
			return n
		}
	}
	return n
}

// done reports whether every task put has been done: no message in the
// ring, none taken and not done by a live process. The ring is read
// before the entries: a message leaves the ring only after its taker
// counted it.
// After an immediate Shutdown it first discards what a producer committed
// since (those tasks count as done).
func (q *Queue) done() bool {
	if atomic.LoadUint32(q.shutdown) == qShutImmediate {
		q.discard()
	}
	return q.committed() == 0 && q.takenNotDone() == 0
}

// TaskDone marks one task taken from the queue as finished. It lowers the
// count of the calling process's taker entry or, when that is zero (the
// task was taken by another process and handed over), the count of
// another live taker, or a loose count. It returns ErrTaskDone, changing
// nothing, when no task is counted taken by anyone alive. When the last
// task is done, every Join returns.
func (j *JoinableQueue) TaskDone() error {
	q := j.Queue
	if i := q.joinIdx.Load(); i >= 0 && q.doneIn(&q.joinTab[i], true) {
		return nil
	}
	for i := range q.joinTab {
		if q.doneIn(&q.joinTab[i], true) {
			return nil
		}
	}
	for i := range q.joinTab {
		if q.doneIn(&q.joinTab[i], false) {
			return nil
		}
	}
	for range qEventTries { // bounded against a peer that rewrites the word
		v := atomic.LoadUint32(q.joinLoose)
		if v == 0 {
			return ErrTaskDone
		}
		// Publishes one loose task done.
		if atomic.CompareAndSwapUint32(q.joinLoose, v, v-1) {
			if v == 1 {
				q.wakeJoiners()
			}
			return nil
		}
	}
	return fmt.Errorf("ringbuf: loose task count never held still: %w", shm.ErrCorrupt)
}

// doneIn lowers the count of entry t by one task if it has any and is
// this process's (mine) or a live other process's (!mine).
func (q *Queue) doneIn(t *qTaker, mine bool) bool {
	for range qEventTries { // bounded against a peer that rewrites the entry
		w := atomic.LoadUint64(&t.word)
		if uint32(w) == 0 || (uint32(w>>32) == q.selfClaim) != mine || !mine && !q.takerAlive(t, w) {
			return false
		}
		// Publishes one task done.
		if atomic.CompareAndSwapUint64(&t.word, w, w-1) {
			if uint32(w) == 1 {
				q.wakeJoiners()
			}
			return true
		}
	}
	return false
}

// wakeJoiners wakes every sleeping Join, after a count of taken tasks
// reached zero (Join may return only then, or after a taker died, which
// it finds itself every check interval). The count's compare-and-swap
// came first: a joiner registers before it looks, so either it sees the
// zero or this load sees it.
func (q *Queue) wakeJoiners() {
	if atomic.LoadUint32(q.joinWaiters) != 0 {
		q.wakeJoinersSlow()
	}
}

// wakeJoinersSlow is wakeJoiners with a sleeper announced, outlined so
// that the test above stays inline in TaskDone.
func (q *Queue) wakeJoinersSlow() {
	atomic.AddUint32(q.joinEpoch, 1) // a new epoch: sleepers must look again
	q.ctr.Wake()
	futex.WakeAll(q.joinEpoch)
}

// Unfinished returns the number of tasks put and not yet done: messages in
// the ring plus tasks taken and not done by live processes. A message
// being put (claimed, not committed) is not counted yet.
func (j *JoinableQueue) Unfinished() int { return j.committed() + j.takenNotDone() }

// Join waits until every task put into the queue has been done, or ctx is
// done (nil: never; then ctx.Err()). Tasks taken by a process that died
// before their TaskDone count as done.
func (j *JoinableQueue) Join(ctx context.Context) error {
	_, err := j.joinWait(ctx, time.Time{}, false)
	return err
}

// JoinTimeout waits at most d for every task to be done and reports
// whether they were. A d of zero or less does not wait.
func (j *JoinableQueue) JoinTimeout(d time.Duration) (bool, error) {
	if d <= 0 {
		return j.joinWait(context.Background(), time.Time{}, true)
	}
	return j.joinWait(context.Background(), futex.After(d), false)
}

// TryJoin reports whether every task put has been done, without waiting.
func (j *JoinableQueue) TryJoin() (bool, error) {
	return j.joinWait(context.Background(), time.Time{}, true)
}

func (j *JoinableQueue) joinWait(ctx context.Context, deadline time.Time, try bool) (bool, error) {
	q := j.Queue
	if q.done() {
		return true, nil
	}
	if try {
		return false, nil
	}
	spun := false // Join sleeps without spinning first
	for {
		atomic.AddUint32(q.joinWaiters, 1) // announces a sleeper to TaskDone
		ep := atomic.LoadUint32(q.joinEpoch)
		if q.done() {
			atomic.AddUint32(q.joinWaiters, ^uint32(0))
			return true, nil
		}
		// Sleeps until a count reaches zero, or a check interval passes
		// (a taker may have died meanwhile: done frees its entry).
		wake := futex.After(q.check)
		if !deadline.IsZero() && deadline.Before(wake) {
			wake = deadline
		}
		q.ctr.Sleep(&spun)
		err := futex.Wait(ctx, q.joinEpoch, ep, wake)
		atomic.AddUint32(q.joinWaiters, ^uint32(0))
		switch {
		case err == nil:
		case err == futex.ErrTimeout:
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				done := q.done()
				if !done {
					q.ctr.Timeout()
				}
				return done, nil
			}
		default:
			return false, err
		}
	}
}
