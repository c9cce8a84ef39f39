package futex

import (
	"context"
	"errors"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrTimeout is returned by [Wait] when its deadline passes before a wakeup.
var ErrTimeout = errors.New("futex: timed out")

const (
	opWake       = 1  // FUTEX_WAKE
	opWaitBitset = 9  // FUTEX_WAIT_BITSET: absolute CLOCK_MONOTONIC timeout
	opWakeBitset = 10 // FUTEX_WAKE_BITSET
)

// selfBit is this process's bit for FUTEX_WAIT_BITSET: a cancelled context
// wakes only leaders whose bit it is.
var selfBit = uint32(1) << (uint(os.Getpid()) & 31)

// Wake wakes at most n sleepers on addr, in any process, and returns how many
// the kernel woke. A goroutine parked in this process behind a woken leader
// is released too but not counted.
func Wake(addr *uint32, n int) int {
	if n <= 0 {
		return 0
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	// FUTEX_WAKE never blocks: a raw syscall skips the scheduler's
	// enter/exit bookkeeping (measured at ~7% of a contended queue's time).
	r, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

// WakeAll wakes every sleeper on addr in every process.
func WakeAll(addr *uint32) int { return Wake(addr, math.MaxInt32) }

// wakeSelf wakes this process's leader on addr (and, spuriously, leaders of
// processes that share its bit).
func wakeSelf(addr *uint32) {
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWakeBitset, math.MaxInt32, 0, 0, uintptr(selfBit))
}

// sysWait sleeps in the kernel while *addr == val, until abs (CLOCK_MONOTONIC;
// nil for none). It retries EINTR against the same absolute deadline, so
// signals never stretch the timeout.
func sysWait(addr *uint32, val uint32, abs *unix.Timespec) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWaitBitset,
			uintptr(val), uintptr(unsafe.Pointer(abs)), 0, uintptr(selfBit))
		switch e {
		case 0, syscall.EAGAIN: // woken, or *addr != val
			return nil
		case syscall.EINTR:
			if atomic.LoadUint32(addr) != val {
				return nil
			}
			continue
		case syscall.ETIMEDOUT:
			return ErrTimeout
		default:
			return e
		}
	}
}

// absDeadline converts a time.Time deadline into an absolute CLOCK_MONOTONIC
// timespec for FUTEX_WAIT_BITSET.
func absDeadline(deadline time.Time) (*unix.Timespec, error) {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return nil, err
	}
	d := time.Until(deadline)
	if d < 0 {
		d = 0
	}
	ns := now.Nano() + int64(d)
	ts := unix.NsecToTimespec(ns)
	return &ts, nil
}

// A waitq is the per-(process, word) rendezvous: at most one leader sleeps in
// the kernel; followers wait for done to close.
type waitq struct {
	leading bool
	done    chan struct{} // closed when the current leader returns
	refs    int           // leader plus followers
}

type bucket struct {
	mu sync.Mutex
	m  map[*uint32]*waitq
	_  [40]byte // keep buckets on separate cache lines
}

var buckets [64]bucket

func bucketOf(addr *uint32) *bucket {
	h := uintptr(unsafe.Pointer(addr)) >> 2
	h ^= h >> 7
	return &buckets[h&63]
}

// Wait sleeps while *addr == val until it is woken by [Wake], the deadline
// passes (zero means none) or ctx is done (nil means never). It returns nil
// when woken, when *addr no longer equals val, or spuriously; [ErrTimeout]
// when the deadline passed (even if *addr no longer equals val); ctx.Err()
// when the context ended. Callers loop, re-checking their condition.
//
// Goroutines of one process waiting on the same addr share one OS thread
// in the kernel; see the package documentation.
func Wait(ctx context.Context, addr *uint32, val uint32, deadline time.Time) error {
	// The deadline is checked before the word: a peer that keeps changing
	// the word would otherwise make every Wait return nil at once, and a
	// caller that looks at its deadline only on ErrTimeout would loop past
	// it for as long as the peer keeps writing.
	hasDeadline := !deadline.IsZero()
	if hasDeadline && !time.Now().Before(deadline) {
		return ErrTimeout
	}
	if atomic.LoadUint32(addr) != val {
		return nil
	}
	var cdone <-chan struct{}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		cdone = ctx.Done()
	}

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
