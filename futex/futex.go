//go:build linux

package futex

import (
	"context"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

// WakeLocal wakes every goroutine of this process that sleeps on addr (in
// Wait or WaitAny), whether or not the word changed, and no sleeper of
// another process (but, spuriously, one that shares this process's wake
// bit, on the legacy path). It is for news that is not in the word: the
// holder that a lock word names has died. A plain FUTEX_WAKE does not
// carry such news through the hub, whose waiter thread learns of one woken
// word per futex_waitv return and drops wakes that left a word as it was.
// A waiter woken by WakeLocal returns nil, as for any wake. On the legacy
// path a wake that lands just before the sleeper enters the kernel is
// lost; callers that must not lose one repeat it.
func WakeLocal(addr *uint32) {
	b := bucketOf(addr)
	b.mu.Lock()
	if q := b.m[addr]; q != nil && q.leading {
		wakeSelf(addr) // a leader sleeps in the kernel itself
	}
	for k, r := range b.regs {
		if k.addr == addr && r.w != nil {
			r.w.mu.Lock()
			r.w.fire(r, nil)
			if r.w.borrowed {
				// A borrower sleeps in the kernel, perhaps on this
				// word, which did not change: wake it to look.
				r.w.poke()
			}
			r.w.mu.Unlock()
		}
	}
	b.mu.Unlock()
}

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

// WaitAny is [Wait] on several words at once: it sleeps while *addrs[i] ==
// vals[i] for every i, until one of the words is woken, the deadline
// passes (zero means none) or ctx is done (nil means never). It returns as
// Wait does; callers re-check every condition they wait for. Through the
// hub it costs no thread per word; on the legacy path, one per word.
func WaitAny(ctx context.Context, addrs []*uint32, vals []uint32, deadline time.Time) error {
	if len(addrs) != len(vals) {
		panic("futex: WaitAny with unequal words and values")
	}
	cdone, deadline, err := prologue(ctx, deadline)
	if err != nil {
		return err
	}
	for i, a := range addrs {
		if atomic.LoadUint32(a) != vals[i] {
			return nil
		}
	}
	for {
		var err error
		if useHub.Load() || len(addrs) == 0 {
			err = hubWaitAny(ctx, cdone, addrs, vals, deadline)
		} else {
			err = legacyWaitAny(ctx, addrs, vals, deadline)
		}
		if err != ErrTimeout || !time.Now().Before(deadline) {
			return err
		}
		for i, a := range addrs {
			if atomic.LoadUint32(a) != vals[i] {
				return nil
			}
		}
	}
}

// legacyWaitAny waits on each word in a goroutine of its own (each may
// hold a thread) and returns with the first.
func legacyWaitAny(ctx context.Context, addrs []*uint32, vals []uint32, deadline time.Time) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, len(addrs))
	for i, a := range addrs {
		go func() { res <- legacyWait(sub, sub.Done(), a, vals[i], deadline) }()
	}
	err := <-res
	cancel()
	for range len(addrs) - 1 {
		<-res
	}
	if err == context.Canceled && ctx.Err() == nil {
		err = nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// Wait sleeps while *addr == val until it is woken by [Wake], the deadline
// passes (zero means none) or ctx is done (nil means never). It returns nil
// when woken, when *addr no longer equals val, or spuriously; [ErrTimeout]
// when the deadline passed (even if *addr no longer equals val); ctx.Err()
// when the context ended. Callers loop, re-checking their condition.
//
// ErrTimeout is never early: it is returned only after the clock, read
// again by Wait, shows the deadline passed. A deadline [MaxTimeout] or more
// ahead (see [After]) is none.
//
// Goroutines of one process park in the Go scheduler; a few threads sleep
// in the kernel for all of them. See the package documentation.
func Wait(ctx context.Context, addr *uint32, val uint32, deadline time.Time) error {
	// The deadline is checked before the word: a peer that keeps changing
	// the word would otherwise make every Wait return nil at once, and a
	// caller that looks at its deadline only on ErrTimeout would loop past
	// it for as long as the peer keeps writing.
	cdone, deadline, err := prologue(ctx, deadline)
	if err != nil {
		return err
	}
	if atomic.LoadUint32(addr) != val {
		return nil
	}
	for {
		var err error
		switch {
		case !useHub.Load() || sleepsDirect(addr):
			err = legacyWait(ctx, cdone, addr, val, deadline)
		case reserveDirect(deadline):
			err = legacyWait(ctx, cdone, addr, val, deadline)
			directSleepers.Add(-1)
		default:
			err = hubWait(ctx, cdone, addr, val, deadline)
		}
		if err != ErrTimeout || !time.Now().Before(deadline) {
			return err
		}
		// The kernel's or the timer's clock said the deadline passed
		// before ours does: wait out the rest.
		if atomic.LoadUint32(addr) != val {
			return nil
		}
	}
}

type bucket struct {
	mu   sync.Mutex
	m    map[*uint32]*waitq // legacy path: the word's leader and followers
	regs map[hubKey]*reg    // hub path: the word's registration per value
	_    [32]byte           // keep buckets on separate cache lines
}

var buckets [64]bucket

func bucketOf(addr *uint32) *bucket {
	h := uintptr(unsafe.Pointer(addr)) >> 2
	h ^= h >> 7
	return &buckets[h&63]
}

// prologue is the start of Wait and WaitAny, with one clock read: a
// deadline already passed is ErrTimeout before the words are looked at
// (a peer that keeps changing a word must not make a Wait return nil past
// its deadline for ever), a deadline too far to matter becomes none, and
// a done ctx is its error. It returns ctx's done channel (nil: never).
func prologue(ctx context.Context, deadline time.Time) (<-chan struct{}, time.Time, error) {
	if !deadline.IsZero() {
		now := time.Now()
		if !now.Before(deadline) {
			return nil, deadline, ErrTimeout
		}
		if forever(deadline, now) {
			deadline = time.Time{}
		}
	}
	if ctx == nil {
		return nil, deadline, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, deadline, err
	}
	return ctx.Done(), deadline, nil
}
