package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
)

var qFutexWake = futex.Wake

// qMinSpin is the number of spin iterations (about 60 ns each) a waiting
// Put or Get makes before it sleeps, however low the process's adaptive
// spin budget has fallen.
const qMinSpin = 100

// qWaiter is the state of one blocking call between attempts: it spins
// first, then registers as a sleeper on an event count, re-attempts, and
// sleeps. While the call stays blocked behind the same claimed slot for a
// check interval, it checks whether the claimant is alive and reclaims
// the slot if not.
type qWaiter struct {
	q          *Queue
	ev         *qEvent
	ctx        context.Context
	deadline   time.Time // zero: none
	spin       int
	spinning   bool
	spun       bool // the spin ran out and no sleep has counted it yet
	registered bool
	watched    bool   // registered with the process's liveness checker (lostWake)
	idle       bool   // a sleep on the empty queue lasted a whole check interval
	seq        uint32 // the epoch this waiter registered in
	blkSlot    unsafe.Pointer
	blkWord    uint64
	blkSince   time.Time
}

func (q *Queue) newWaiter(ev *qEvent, ctx context.Context, deadline time.Time) qWaiter {
	return qWaiter{q: q, ev: ev, ctx: ctx, deadline: deadline, spinning: true}
}

// done ends the wait after a successful (or final) attempt.
func (w *qWaiter) done() {
	if w.registered {
		w.ev.leave(w.seq)
		w.registered = false
	}
	if w.watched {
		robust.UnwatchFunc(w.q)
		w.watched = false
	}
	if w.spinning && w.spin > 0 {
		futex.SpinDone(true)
	}
}

// pause is called after an attempt that found the queue full or empty
// (st qWait) or blocked behind slot s holding word blk (st qBlocked). It
// returns nil to attempt again, or the error that ends the call:
// futex.ErrTimeout at the deadline, or ctx.Err().
func (w *qWaiter) pause(st qStatus, s unsafe.Pointer, blk uint64) error {
	if w.spinning {
		// The first qMinSpin iterations are active whatever the adaptive
		// budget says (Spin(0) always pauses on a multicore machine).
		if w.spin < qMinSpin && futex.Spin(0) || futex.Spin(w.spin) {
			w.spin++
			return nil
		}
		futex.SpinDone(false)
		w.spinning = false
		w.spun = true
	}
	if !w.registered {
		// Register, then attempt once more: a notifier that changes the
		// queue after our attempt sees the registration and wakes us.
		w.seq = w.ev.register()
		w.registered = true
		return nil
	}
	now := time.Now()
	if st == qBlocked {
		if s == w.blkSlot && blk == w.blkWord {
			if now.Sub(w.blkSince) >= w.q.check {
				w.q.reclaim(s, blk)
				w.blkSince = now
			}
		} else {
			w.blkSlot, w.blkWord, w.blkSince = s, blk, now
		}
	} else {
		w.blkSlot = nil
	}
	wake := now.Add(min(w.q.check, futex.MaxTimeout))
	if st == qWait && w.ev == w.q.notEmpty && w.idle {
		// Empty for a whole interval already, with no claim in the way:
		// only a commit, a Close or a Shutdown ends this wait, and each
		// wakes the sleepers, so sleep without a check deadline (10,000
		// getters blocked on empty queues would otherwise wake 100,000
		// times a second). Not from the first sleep: registering with
		// the checker takes its mutex, which sleeps of a few
		// microseconds in a busy queue (W7: 15% of its throughput) should
		// not pay. One wake
		// can be lost: that of a producer killed between its commit and
		// its wake. The process's liveness checker covers it (lostWake:
		// once per interval, while a getter of this handle sleeps, it
		// wakes the getters if the queue holds a message). A producer
		// that claims the slot and dies leaves nothing to get: the next
		// commit wakes this getter, which finds the dead claim in its
		// way and checks it every interval from then on. A full queue
		// keeps the checks: a consumer can claim the slot a putter waits
		// for and die, and no one else would ever wake the putter.
		wake = time.Time{}
		if !w.watched {
			robust.WatchFunc(w.q, w.q.lostWake, w.q.check)
			w.watched = true
		}
	}
	if !w.deadline.IsZero() && (wake.IsZero() || w.deadline.Before(wake)) {
		wake = w.deadline
	}
	w.q.ctr.Sleep(&w.spun)
	err := futex.Wait(w.ctx, &w.ev.seq, w.seq, wake)
	w.ev.leave(w.seq)
	w.registered = false
	if err == nil {
		return nil
	}
	if err == futex.ErrTimeout {
		if w.deadline.IsZero() || time.Now().Before(w.deadline) {
			if st == qWait && w.ev == w.q.notEmpty {
				w.idle = true
			}
			return nil // periodic re-check
		}
		w.q.ctr.Timeout()
	}
	return err
}

// giveUp passes a notification on when this call leaves without taking
// what it was woken for, so that another sleeper gets it.
func (w *qWaiter) giveUp(ready bool) {
	w.done()
	if ready && w.ev.sleepers() != 0 {
		w.q.wake(w.ev)
	}
}

// reclaim resolves slot s, stuck with word w, if its claimant is dead.
func (q *Queue) reclaim(s unsafe.Pointer, w uint64) {
	seq, claim := uint32(w), uint32(w>>32)
	if claim == 0 || claim&qClaimFull != 0 {
		return
	}
	idx := uint32((uintptr(s) - uintptr(q.slots)) / q.stride)
	prodClaim := (seq-idx)&uint32(q.mask) == 0
	owner := qConsOwner(s)
	if prodClaim {
		owner = qProdOwner(s)
	}
	if q.claimantAlive(claim, atomic.LoadUint64(owner)) {
		return
	}
	if prodClaim {
		// Publishes "nothing here": the dead producer's message is lost.
		if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(seq+1, qClaimFull|qClaimSkip)) {
			q.ctr.OwnerDead()
			q.wake(q.notEmpty)
		}
		return
	}
	// Frees the slot for the next lap: the dead consumer's message is lost.
	if atomic.CompareAndSwapUint64(qSlotWord(s), w, qWord(seq-1+q.capacity, 0)) {
		q.ctr.OwnerDead()
		q.wake(q.notFull)
	}
}

// claimantAlive reports whether the process named by a slot claim may be
// alive. owner is the slot's owner word; when it names the claimant (it is
// written just after the claim), the full identity is checked. Otherwise
// the claimant died (or stalls) between its claim and that record, and
// the claim's own registry slot and 14 generation bits are checked: the
// claimant is dead if its slot is unlocked, or was claimed again by a
// process whose generation differs in those bits (a slot claimed again a
// multiple of 16,384 times since would look alive until its holder goes).
func (q *Queue) claimantAlive(claim uint32, owner uint64) bool {
	if o := proc.Unpack(owner); qClaimOf(o) == claim {
		return q.reg.Alive(o)
	}
	return q.reg.AliveBits(proc.ID{Slot: claim & qClaimSlotMask, Gen: claim >> qClaimGenShift & qClaimGenMask}, qClaimGenMask)
}

func qCorruptErr(s unsafe.Pointer, pos, w uint64) error {
	if s == nil {
		return fmt.Errorf("ringbuf: no progress at position %d: %w", pos, shm.ErrCorrupt)
	}
	return fmt.Errorf("ringbuf: slot word %#x at position %d: %w", w, pos, shm.ErrCorrupt)
}

var errReclaimed = fmt.Errorf("ringbuf: slot reclaimed while this process held it: %w", shm.ErrCorrupt)

// The blocking forms share one signature: try (never wait), or wait until
// ctx is done (nil: never) and, if d > 0, at most d. The deadline is
// computed only when the call first has to wait, so the fast path reads
// no clock.

// putClaim claims a slot for an n-byte message. Its fast path is one
// attempt: a load of this handle's closed flag and of the shutdown word,
// claimPut (with the limit test, for a capacity not a power of two), and
// a load of the shutdown word again.
func (q *Queue) putClaim(ctx context.Context, n int, d time.Duration, try bool) (unsafe.Pointer, uint64, error) {
	if uint(n) > uint(q.maxMsg) {
		return nil, 0, ErrTooLarge
	}
	if q.handleClosed.Load() {
		return nil, 0, ErrClosed
	}
	if atomic.LoadUint32(q.shutdown) != 0 {
		return nil, 0, ErrShutdown
	}
	s, pos, st, blk := q.claimPut()
	if st != qOK {
		return q.putClaimSlow(ctx, d, try, s, pos, st, blk)
	}
	// Shutdown is checked after the claim: a consumer that saw the queue
	// empty and shut down can never see this message.
	if atomic.LoadUint32(q.shutdown) != 0 {
		q.skipPut(s, pos)
		return nil, 0, ErrShutdown
	}
	return s, pos, nil
}

// putClaimSlow goes on after a first attempt that did not claim (st).
func (q *Queue) putClaimSlow(ctx context.Context, d time.Duration, try bool, s unsafe.Pointer, pos uint64, st qStatus, blk uint64) (unsafe.Pointer, uint64, error) {
	if st == qCorrupt {
		return nil, 0, qCorruptErr(s, pos, blk)
	}
	if try {
		return nil, 0, ErrFull
	}
	var deadline time.Time
	if d > 0 {
		deadline = futex.After(d)
	}
	w := q.newWaiter(q.notFull, ctx, deadline)
	for {
		if err := w.pause(st, s, blk); err != nil {
			w.giveUp(!q.Full())
			if err == futex.ErrTimeout {
				return nil, 0, ErrFull
			}
			return nil, 0, err
		}
		if q.handleClosed.Load() {
			w.done()
			return nil, 0, ErrClosed
		}
		if atomic.LoadUint32(q.shutdown) != 0 {
			w.done()
			return nil, 0, ErrShutdown
		}
		s, pos, st, blk = q.claimPut()
		switch st {
		case qOK:
			w.done()
			if atomic.LoadUint32(q.shutdown) != 0 {
				q.skipPut(s, pos)
				return nil, 0, ErrShutdown
			}
			return s, pos, nil
		case qCorrupt:
			w.done()
			return nil, 0, qCorruptErr(s, pos, blk)
		}
	}
}

func (q *Queue) put(ctx context.Context, msg []byte, d time.Duration, try bool) error {
	for {
		s, pos, err := q.putClaim(ctx, len(msg), d, try)
		if err != nil {
			return err
		}
		copy(q.payload(s, len(msg)), msg)
		if q.commitPut(s, pos, len(msg)) {
			return nil
		}
		// Judged dead while writing: the slot was skipped; put again.
	}
}

// Put puts msg into the queue, waiting while it is full until ctx is done
// (nil: never). It returns nil; ErrTooLarge for a message over
// MaxMsgSize; ErrShutdown after Shutdown (in any process); ErrClosed after
// this handle's Close; ctx.Err(), leaving the queue unchanged; or an
// error wrapping shm.ErrCorrupt.
func (q *Queue) Put(ctx context.Context, msg []byte) error {
	return q.put(ctx, msg, 0, false)
}

// PutTimeout is Put waiting at most d; it returns ErrFull if the queue
// stays full that long. A d of zero or less tries once, like TryPut.
func (q *Queue) PutTimeout(msg []byte, d time.Duration) error {
	return q.put(context.Background(), msg, d, d <= 0)
}

// TryPut puts msg if there is room now, and returns ErrFull otherwise.
func (q *Queue) TryPut(msg []byte) error { return q.put(context.Background(), msg, 0, true) }

// getClaim finds the next message, claimed (claim) or only found, for
// finishGet (w is then the word it was found under). limit < 0 accepts
// any length; a longer message gives ErrShortBuffer. Its fast path is one
// claimGet.
func (q *Queue) getClaim(ctx context.Context, limit int, d time.Duration, try, claim bool) (unsafe.Pointer, uint64, int, uint64, error) {
	if err := q.getCheck(); err != nil {
		return nil, 0, 0, 0, err
	}
	s, pos, n, st, blk := q.claimGet(limit, claim)
	if st == qOK {
		return s, pos, n, blk, nil
	}
	return q.getClaimSlow(ctx, limit, d, try, claim, s, pos, n, st, blk)
}

// getClaimSlow goes on after a first attempt that did not succeed (st).
func (q *Queue) getClaimSlow(ctx context.Context, limit int, d time.Duration, try, claim bool, s unsafe.Pointer, pos uint64, n int, st qStatus, blk uint64) (unsafe.Pointer, uint64, int, uint64, error) {
	var w qWaiter
	waiting := false
	for {
		switch st {
		case qOK:
			if waiting {
				w.done()
			}
			return s, pos, n, blk, nil
		case qCorrupt:
			if waiting {
				w.done()
			}
			return nil, 0, 0, 0, qCorruptErr(s, pos, blk)
		case qClosed:
			if waiting {
				w.done()
			}
			return nil, 0, 0, 0, ErrShutdown
		case qShort:
			if waiting {
				w.done()
			}
			return nil, 0, n, 0, ErrShortBuffer
		}
		if try {
			return nil, 0, 0, 0, ErrEmpty
		}
		if !waiting {
			var deadline time.Time
			if d > 0 {
				deadline = futex.After(d)
			}
			w = q.newWaiter(q.notEmpty, ctx, deadline)
			waiting = true
		}
		if err := w.pause(st, s, blk); err != nil {
			w.giveUp(!q.Empty())
			if err == futex.ErrTimeout {
				return nil, 0, 0, 0, ErrEmpty
			}
			return nil, 0, 0, 0, err
		}
		if err := q.getCheck(); err != nil {
			w.done()
			return nil, 0, 0, 0, err
		}
		s, pos, n, st, blk = q.claimGet(limit, claim)
	}
}

// getCheck returns the error a Get fails with before it looks: ErrClosed
// on a closed handle, ErrShutdown after an immediate Shutdown (once it has
// discarded what a producer committed since).
func (q *Queue) getCheck() error {
	if q.handleClosed.Load() {
		return ErrClosed
	}
	if atomic.LoadUint32(q.shutdown) == qShutImmediate {
		q.discard()
		return ErrShutdown
	}
	return nil
}

func (q *Queue) getInto(ctx context.Context, buf []byte, d time.Duration, try bool) (int, error) {
	for {
		s, pos, n, w, err := q.getClaim(ctx, len(buf), d, try, !qOptimisticGet)
		if err != nil {
			return n, err
		}
		copy(buf[:n], q.payload(s, n))
		if q.finishGet(s, pos, w) {
			return n, nil
		}
		if !qOptimisticGet {
			return 0, errReclaimed
		}
		// Another consumer took it while we copied: look again.
	}
}

func (q *Queue) getAlloc(ctx context.Context, d time.Duration, try bool) ([]byte, error) {
	for {
		s, pos, n, w, err := q.getClaim(ctx, -1, d, try, !qOptimisticGet)
		if err != nil {
			return nil, err
		}
		msg := make([]byte, n)
		copy(msg, q.payload(s, n))
		if q.finishGet(s, pos, w) {
			return msg, nil
		}
		if !qOptimisticGet {
			return nil, errReclaimed
		}
	}
}

// GetInto removes the next message from the queue and copies it into buf,
// waiting while the queue is empty until ctx is done (nil: never). It
// returns the message length; ErrShortBuffer (with the length needed) if
// buf is too small, leaving the message in the queue; ErrShutdown once a
// shut-down queue is drained (at once after an immediate Shutdown);
// ErrClosed after this handle's Close; ctx.Err(); or an error wrapping
// shm.ErrCorrupt.
// It does not allocate.
func (q *Queue) GetInto(ctx context.Context, buf []byte) (int, error) {
	return q.getInto(ctx, buf, 0, false)
}

// GetIntoTimeout is GetInto waiting at most d; it returns ErrEmpty if the
// queue stays empty that long. A d of zero or less tries once.
func (q *Queue) GetIntoTimeout(buf []byte, d time.Duration) (int, error) {
	return q.getInto(context.Background(), buf, d, d <= 0)
}

// TryGetInto is GetInto without waiting: ErrEmpty when there is nothing.
func (q *Queue) TryGetInto(buf []byte) (int, error) {
	return q.getInto(context.Background(), buf, 0, true)
}

// Get removes the next message from the queue and returns it in a new
// slice, waiting while the queue is empty until ctx is done (nil: never).
// Errors as for GetInto.
func (q *Queue) Get(ctx context.Context) ([]byte, error) { return q.getAlloc(ctx, 0, false) }

// GetTimeout is Get waiting at most d; ErrEmpty if the queue stays empty.
// A d of zero or less tries once.
func (q *Queue) GetTimeout(d time.Duration) ([]byte, error) {
	return q.getAlloc(context.Background(), d, d <= 0)
}

// TryGet is Get without waiting: ErrEmpty when there is nothing.
func (q *Queue) TryGet() ([]byte, error) { return q.getAlloc(context.Background(), 0, true) }
