package waitset

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/semaphore"
)

// periodic is a Case that Select looks at again at least every every(),
// even if no wake came.
type periodic interface{ every() time.Duration }

// A Case is one object and what Select waits for on it. Obtain one from
// the functions of this package; a Case is used by one Select at a time.
type Case interface {
	// try reports whether the case is ready, completing its operation if
	// it has one; an error ends the Select.
	try() (bool, error)
	// arm registers a sleeper and returns the word and value to sleep on;
	// disarm undoes it.
	arm() (*uint32, uint32)
	disarm()
}

// Select waits until one of cases is ready (a completing case: has
// completed) and returns its index, or returns -1 and ctx.Err() when ctx
// ends first (nil: never). An error of a case's operation is returned
// with its index.
func Select(ctx context.Context, cases ...Case) (int, error) {
	return sel(ctx, time.Time{}, false, cases)
}

// SelectTimeout is Select waiting at most d: -1 and a nil error when d
// passed with no case ready. A d of zero or less is TrySelect; a d too
// large to represent waits forever.
func SelectTimeout(d time.Duration, cases ...Case) (int, error) {
	if d <= 0 {
		return TrySelect(cases...)
	}
	return sel(context.Background(), futex.After(d), false, cases)
}

// TrySelect returns the index of a case ready now (completing it), or -1.
func TrySelect(cases ...Case) (int, error) {
	return sel(context.Background(), time.Time{}, true, cases)
}

var rotor atomic.Uint32

func sel(ctx context.Context, deadline time.Time, try bool, cases []Case) (int, error) {
	n := len(cases)
	if n == 0 {
		if try || ctx == nil && deadline.IsZero() {
			return -1, nil
		}
	}
	start := 0
	if n > 1 {
		start = int(rotor.Add(1) % uint32(n))
	}
	poll := func() (int, error) {
		for k := range n {
			i := (start + k) % n
			ok, err := cases[i].try()
			if err != nil || ok {
				return i, err
			}
		}
		return -1, nil
	}
	if i, err := poll(); i >= 0 || try {
		return i, err
	}
	// Cases whose wake may be lost to a process killed mid-update ask to
	// be looked at again periodically.
	var every time.Duration
	for _, c := range cases {
		if p, ok := c.(periodic); ok {
			if d := p.every(); d > 0 && (every == 0 || d < every) {
				every = d
			}
		}
	}
	words := make([]*uint32, n)
	vals := make([]uint32, n)
	for {
		// Register on every word, then look again: an operation that
		// made a case ready after the look above sees the registration
		// and wakes us.
		for i, c := range cases {
			words[i], vals[i] = c.arm()
		}
		i, err := poll()
		if i < 0 && err == nil {
			wake, early := deadline, false
			if every > 0 {
				if next := futex.After(every); wake.IsZero() || next.Before(wake) {
					wake, early = next, true
				}
			}
			err = futex.WaitAny(ctx, words, vals, wake)
			if err == nil || early && errors.Is(err, futex.ErrTimeout) {
				i, err = poll()
			}
		}
		for _, c := range cases {
			c.disarm()
		}
		switch {
		case i >= 0:
			return i, err
		case errors.Is(err, futex.ErrTimeout):
			return -1, nil
		case err != nil:
			return -1, err
		}
	}
}

// EventSet is ready while e is set.
func EventSet(e *event.Event) Case { return eventCase{e} }

type eventCase struct{ e *event.Event }

func (c eventCase) try() (bool, error)     { return c.e.IsSet(), nil }
func (c eventCase) arm() (*uint32, uint32) { return c.e.Arm() }
func (c eventCase) disarm()                {}

// Acquire takes a unit of s: it completes when it took one.
func Acquire(s *semaphore.Semaphore) Case { return semCase{s, true} }

// Acquirable is ready while s has a unit; it takes nothing.
func Acquirable(s *semaphore.Semaphore) Case { return semCase{s, false} }

type semCase struct {
	s    *semaphore.Semaphore
	take bool
}

func (c semCase) try() (bool, error) {
	if c.take {
		return c.s.TryAcquire()
	}
	return c.s.Value() > 0, nil
}
func (c semCase) arm() (*uint32, uint32) { return c.s.Arm() }
func (c semCase) disarm()                {}

// Lock acquires l: it completes when it took the lock, as l.TryAcquire
// would. If the holder died holding it, the case completes holding the
// lock and Select returns lock.ErrOwnerDead with its index, as
// l.Acquire does: repair, call Consistent, then Release. A dead holder is
// found while Select sleeps, within l's check interval. Select returns
// lock.ErrNotRecoverable with its index for a lock that is not
// recoverable.
func Lock(l *lock.Lock) Case { return lockCase{l} }

type lockCase struct{ l *lock.Lock }

func (c lockCase) try() (bool, error)     { return c.l.TryAcquire() }
func (c lockCase) arm() (*uint32, uint32) { return c.l.Arm() }
func (c lockCase) disarm()                { c.l.Disarm() }

// Tripped watches b from outside the round: it is ready once b has
// released a round since the case was made or last reported ready, and it
// is ready with barrier.ErrBrokenBarrier while b is broken. It takes no
// part in a round: a Select never counts as a party, and choosing another
// case leaves b as it was.
//
// Why an observer and not a Wait: a barrier Wait adds the caller to the
// round's count, and that arrival cannot be taken back once another party
// completes the round. A Select whose Wait case lost to another case would
// either leave a phantom party behind (the round trips one party short of
// the real ones) or have to break the round to withdraw. A coordinator
// that waits for "the workers finished a phase, or a job came in, or
// stop" wants the round's outcome, not a seat in it; a party that must
// arrive calls Wait.
//
// A Reset alone (no Abort) does not make the case ready: a reset round did
// not trip, and an observer is not among the waiters a Reset breaks; it
// waits for the next round. An Abort followed by a Reset before the Select
// looked may go unseen, as an Event pulse may. The case does not check
// whether the parties live: the waiting parties do, and break the barrier
// when one dies, which makes the case ready with ErrBrokenBarrier. With a
// Barrier of one party, a round whose party was killed inside its release
// is never counted: the case sees the next round instead.
func Tripped(b *barrier.Barrier) *TripCase { return &TripCase{b: b, seen: b.Rounds()} }

// A TripCase is the case Tripped returns; after Select chose it without an
// error, Rounds is the number of rounds released since the case was made
// or last chosen (one, unless rounds passed while the Select was not
// looking).
type TripCase struct {
	b      *barrier.Barrier
	seen   uint64
	Rounds uint64
}

func (c *TripCase) try() (bool, error) {
	if c.b.Broken() {
		return true, barrier.ErrBrokenBarrier
	}
	if r := c.b.Rounds(); r != c.seen {
		c.Rounds, c.seen = r-c.seen, r
		return true, nil
	}
	return false, nil
}
func (c *TripCase) arm() (*uint32, uint32) { return c.b.Arm() }
func (c *TripCase) every() time.Duration   { return c.b.CheckInterval() }
func (c *TripCase) disarm()                {}

// A GetCase gets a message from a queue into its buffer; after Select
// chose it, N is the message's length.
type GetCase struct {
	q   *ringbuf.Queue
	buf []byte
	N   int
	val uint32
}

// Get gets a message from q into buf (at least q.MaxMsgSize() bytes, or
// the Select fails with ringbuf.ErrShortBuffer for a longer message): it
// completes when it took one. Select returns ringbuf.ErrShutdown with its
// index once q is shut down and drained (ringbuf.ErrClosed once this
// handle is closed).
func Get(q *ringbuf.Queue, buf []byte) *GetCase { return &GetCase{q: q, buf: buf} }

// Msg returns the message the case got.
func (c *GetCase) Msg() []byte { return c.buf[:c.N] }

func (c *GetCase) try() (bool, error) {
	n, err := c.q.TryGetInto(c.buf)
	switch err {
	case nil:
		c.N = n
		return true, nil
	case ringbuf.ErrEmpty:
		return false, nil
	}
	return false, err
}
func (c *GetCase) arm() (*uint32, uint32) {
	var w *uint32
	w, c.val = c.q.ArmGet()
	return w, c.val
}
func (c *GetCase) disarm() { c.q.DisarmGet(c.val) }

// Readable is ready while q holds a message, or is shut down, or this
// handle is closed; it takes nothing.
func Readable(q *ringbuf.Queue) Case { return &readCase{q: q} }

type readCase struct {
	q   *ringbuf.Queue
	val uint32
}

func (c *readCase) try() (bool, error) {
	return !c.q.Empty() || c.q.IsShutdown() || c.q.Closed(), nil
}
func (c *readCase) arm() (*uint32, uint32) {
	var w *uint32
	w, c.val = c.q.ArmGet()
	return w, c.val
}
func (c *readCase) disarm() { c.q.DisarmGet(c.val) }

// Put puts msg on q: it completes when the message is in. Select returns
// ringbuf.ErrShutdown with its index once q is shut down (ringbuf.ErrClosed
// once this handle is closed).
func Put(q *ringbuf.Queue, msg []byte) Case { return &putCase{q: q, msg: msg, take: true} }

// Writable is ready while q has room, or is shut down, or this handle is
// closed; it puts nothing.
func Writable(q *ringbuf.Queue) Case { return &putCase{q: q} }

type putCase struct {
	q    *ringbuf.Queue
	msg  []byte
	take bool
	val  uint32
}

func (c *putCase) try() (bool, error) {
	if !c.take {
		return c.q.Len() < c.q.Cap() || c.q.IsShutdown() || c.q.Closed(), nil
	}
	switch err := c.q.TryPut(c.msg); err {
	case nil:
		return true, nil
	case ringbuf.ErrFull:
		return false, nil
	default:
		return false, err
	}
}
func (c *putCase) arm() (*uint32, uint32) {
	var w *uint32
	w, c.val = c.q.ArmPut()
	return w, c.val
}
func (c *putCase) disarm() { c.q.DisarmPut(c.val) }

// A RecvCase receives a message from a pipe end into its buffer; after
// Select chose it, N is the message's length.
type RecvCase struct {
	c   *ringbuf.Conn
	buf []byte
	N   int
}

// Recv receives a message from c into buf: it completes when it got one.
// Select returns io.EOF with its index once the peer is gone and the pipe
// drained.
func Recv(c *ringbuf.Conn, buf []byte) *RecvCase { return &RecvCase{c: c, buf: buf} }

// Msg returns the message the case received.
func (c *RecvCase) Msg() []byte { return c.buf[:c.N] }

func (c *RecvCase) try() (bool, error) {
	n, err := c.c.TryRecv(c.buf)
	switch err {
	case nil:
		c.N = n
		return true, nil
	case ringbuf.ErrEmpty:
		return false, nil
	}
	return false, err
}
func (c *RecvCase) arm() (*uint32, uint32) { return c.c.ArmRecv() }
func (c *RecvCase) disarm()                { c.c.DisarmRecv() }

// PipeReadable is ready while a Recv on c would not wait (a message, or
// the end of the stream); it takes nothing.
func PipeReadable(c *ringbuf.Conn) Case { return pipeReadCase{c} }

type pipeReadCase struct{ c *ringbuf.Conn }

func (c pipeReadCase) try() (bool, error)     { return c.c.Poll(0) }
func (c pipeReadCase) arm() (*uint32, uint32) { return c.c.ArmRecv() }
func (c pipeReadCase) disarm()                { c.c.DisarmRecv() }

// Ready returns a channel that receives the index of the first of cases
// to be ready (completing it), for use in a Go select statement, and a
// stop function that ends the wait; the channel is closed after it
// delivered an index or after stop. An index received means its case
// completed, even after stop: drain the channel if the result matters.
// The wait runs in one goroutine, which
// sleeps through the futex hub like any Select.
func Ready(cases ...Case) (ch <-chan int, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan int, 1)
	go func() {
		defer close(c)
		if i, err := Select(ctx, cases...); err == nil || i >= 0 {
			c <- i
		}
	}()
	return c, cancel
}
