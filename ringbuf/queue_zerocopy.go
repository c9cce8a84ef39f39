package ringbuf

import (
	"context"
	"errors"
	"time"
	"unsafe"
)

// errSpent is returned by Commit, Cancel and Release on a Reservation or
// Borrowed that was already finished (or never obtained).
var errSpent = errors.New("ringbuf: reservation or borrow already finished")

// Reservation is a claimed slot being written in place: Bytes, then
// Commit (or Cancel). Until then the slot blocks consumers behind it, so
// finish promptly. Obtain one with Queue.Reserve; it must not be copied.
type Reservation struct {
	q   *Queue
	s   unsafe.Pointer
	pos uint64
	n   int
}

// Reserve claims a slot for an n-byte message, waiting while the queue is
// full until ctx is done (nil: never). Write the message into Bytes and
// Commit. Errors as for Put.
func (q *Queue) Reserve(ctx context.Context, n int) (Reservation, error) {
	return q.reserve(ctx, n, 0, false)
}

// ReserveTimeout is Reserve waiting at most d (ErrFull after that). A d of
// zero or less tries once.
func (q *Queue) ReserveTimeout(n int, d time.Duration) (Reservation, error) {
	return q.reserve(context.Background(), n, d, d <= 0)
}

// TryReserve is Reserve without waiting: ErrFull when there is no room.
func (q *Queue) TryReserve(n int) (Reservation, error) {
	return q.reserve(context.Background(), n, 0, true)
}

func (q *Queue) reserve(ctx context.Context, n int, d time.Duration, try bool) (Reservation, error) {
	s, pos, err := q.putClaim(ctx, n, d, try)
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{q: q, s: s, pos: pos, n: n}, nil
}

// Bytes returns the n bytes of the slot to write the message into. They
// are shared memory: do not keep the slice after Commit or Cancel.
func (r *Reservation) Bytes() []byte {
	if r.q == nil {
		return nil
	}
	return r.q.payload(r.s, r.n)
}

// Commit publishes the message written into Bytes.
func (r *Reservation) Commit() error {
	if r.q == nil {
		return errSpent
	}
	q := r.q
	r.q = nil
	if !q.commitPut(r.s, r.pos, r.n) {
		return errReclaimed
	}
	return nil
}

// Cancel gives the slot up; consumers skip it.
func (r *Reservation) Cancel() error {
	if r.q == nil {
		return errSpent
	}
	r.q.skipPut(r.s, r.pos)
	r.q = nil
	return nil
}

// Borrowed is a message being read in place: Bytes, then Release. Until
// then the slot stays out of producers' reach, so release promptly.
// Obtain one with Queue.Borrow; it must not be copied.
type Borrowed struct {
	q   *Queue
	s   unsafe.Pointer
	pos uint64
	n   int
}

// Borrow takes the next message without copying it, waiting while the
// queue is empty until ctx is done (nil: never). Read it with Bytes, then
// Release. Errors as for Get.
func (q *Queue) Borrow(ctx context.Context) (Borrowed, error) {
	return q.borrow(ctx, 0, false)
}

// BorrowTimeout is Borrow waiting at most d (ErrEmpty after that). A d of
// zero or less tries once.
func (q *Queue) BorrowTimeout(d time.Duration) (Borrowed, error) {
	return q.borrow(context.Background(), d, d <= 0)
}

// TryBorrow is Borrow without waiting: ErrEmpty when there is nothing.
func (q *Queue) TryBorrow() (Borrowed, error) { return q.borrow(context.Background(), 0, true) }

func (q *Queue) borrow(ctx context.Context, d time.Duration, try bool) (Borrowed, error) {
	s, pos, n, _, err := q.getClaim(ctx, -1, d, try, true)
	if err != nil {
		return Borrowed{}, err
	}
	return Borrowed{q: q, s: s, pos: pos, n: n}, nil
}

// Bytes returns the message, in shared memory: do not keep the slice or
// write to it; it is valid until Release.
func (b *Borrowed) Bytes() []byte {
	if b.q == nil {
		return nil
	}
	return b.q.payload(b.s, b.n)
}

// Release returns the slot to producers. It returns an error wrapping
// shm.ErrCorrupt if the slot was reclaimed while borrowed (this process
// was judged dead), in which case the bytes read may be torn.
func (b *Borrowed) Release() error {
	if b.q == nil {
		return errSpent
	}
	q := b.q
	b.q = nil
	if !q.releaseGet(b.s, b.pos) {
		return errReclaimed
	}
	return nil
}
