//go:build linux

package futex

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A waitq is the per-(process, word) rendezvous: at most one leader sleeps in
// the kernel; followers wait for done to close.
type waitq struct {
	leading bool
	done    chan struct{} // closed when the current leader returns
	refs    int           // leader plus followers
}

// legacyWait is the wait path of kernels without futex_waitv: one leader
// per (process, word) sleeps in the kernel, the others park behind it. The
// caller has checked *addr, ctx and the deadline; a zero deadline is none.
func legacyWait(ctx context.Context, cdone <-chan struct{}, addr *uint32, val uint32, deadline time.Time) error {
	hasDeadline := !deadline.IsZero()
	b := bucketOf(addr)
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[*uint32]*waitq)
	}
	q := b.m[addr]
	if q == nil {
		q = &waitq{}
		b.m[addr] = q
	}
	q.refs++
	if !q.leading {
		q.leading = true
		q.done = make(chan struct{})
		b.mu.Unlock()
		err := lead(ctx, cdone, addr, val, deadline, hasDeadline)
		b.mu.Lock()
		q.leading = false
		close(q.done)
		q.refs--
		if q.refs == 0 {
			delete(b.m, addr)
		}
		b.mu.Unlock()
		return err
	}
	done := q.done
	b.mu.Unlock()

	err := follow(cdone, ctx, done, deadline, hasDeadline)
	b.mu.Lock()
	q.refs--
	if q.refs == 0 && !q.leading {
		delete(b.m, addr)
	}
	b.mu.Unlock()
	return err
}

func follow(cdone <-chan struct{}, ctx context.Context, done chan struct{}, deadline time.Time, hasDeadline bool) error {
	if !hasDeadline {
		select {
		case <-done:
			return nil
		case <-cdone:
			return ctx.Err()
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-cdone:
		return ctx.Err()
	case <-t.C:
		return ErrTimeout
	}
}

// lead sleeps in the kernel on behalf of this process's waiters on addr.
func lead(ctx context.Context, cdone <-chan struct{}, addr *uint32, val uint32, deadline time.Time, hasDeadline bool) error {
	var abs *unix.Timespec
	if hasDeadline {
		var err error
		if abs, err = absDeadline(deadline); err != nil {
			return err
		}
	}
	if cdone == nil {
		return sysWait(addr, val, abs)
	}
	// A cancelled context wakes us out of the kernel. The wake may land
	// before we enter it, so the waker repeats until we are out.
	var out atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		for !out.Load() {
			wakeSelf(addr)
			time.Sleep(50 * time.Microsecond)
		}
	})
	err := sysWait(addr, val, abs)
	out.Store(true)
	stop()
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}
