//go:build linux

package futex

import (
	"context"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The waiting hub: goroutines that wait on a word register (word, value)
// with a waiter thread and park on a channel; each waiter thread sleeps in
// futex_waitv on up to hubWords registered words plus its private control
// word. A goroutine adds or removes a registration under the waiter's
// mutex, then bumps the control word and wakes it if it sleeps, so the
// waiter rebuilds its vector. Timeouts and cancellations are the parked
// goroutine's own (a Go timer, ctx.Done), so the kernel wait has no
// deadline and the waiter thread is poked only to drop the registration.
//
// No lost wakes: a registration is entered into the kernel with the value
// its goroutines saw, so a change made before the kernel looks makes
// futex_waitv return at once. futex_waitv reports one woken word although
// it may have been woken on several; after every return the waiter
// therefore also fires every registration whose word no longer holds the
// registered value. A wake that leaves a word's value unchanged carries no
// news (a waiter arriving just after it would sleep on the same value), so
// the futex contract is kept.

const (
	sysFutexWaitv = unix.SYS_FUTEX_WAITV // 449, but 4449/5449 on mips
	waitvMax      = 128                  // FUTEX_WAITV_MAX
	hubWords      = waitvMax - 1
	waitvU32      = 2   // FUTEX2_SIZE_U32
	waitvPrivate  = 128 // FUTEX2_PRIVATE
	opWakePrivate = opWake | 128
)

// Direct sleepers. Through a hub waiter run by its own goroutine, a sleep
// costs two extra handoffs between threads (the control word's wake, and
// the hub thread's wake of the goroutine): W3 ping-pong took about 1.5 to
// 3 times as long. A borrowed waiter (see add) removes most of that; a
// direct sleep is still the cheapest (W3 with every wait sleeping, both
// processes on one CPU: 6.3 µs a round trip direct, 7.0 µs borrowed). So
// while few goroutines of the process sleep, a wait sleeps in the kernel
// itself, on the one-sleeper-per-word path, holding a thread; beyond
// maxDirect at once, waits go through the hub, which bounds the threads. Short timed
// waits (under shortWait) prefer the kernel too: the Go timer that ends a
// hub wait may fire up to a millisecond late in an otherwise idle process
// (the scheduler sleeps in epoll with millisecond resolution).
const shortWait = 2 * time.Millisecond

var (
	maxDirect      atomic.Int32 // 0 under MPIPC_FUTEX=hub: every wait through the hub
	directSleepers atomic.Int32
)

const defaultMaxDirect = 32

// sleepsDirect reports whether a goroutine of this process sleeps in the
// kernel itself on addr: then another wait on addr parks behind it, so
// that one wake that reaches the process releases both.
func sleepsDirect(addr *uint32) bool {
	b := bucketOf(addr)
	b.mu.Lock()
	_, ok := b.m[addr]
	b.mu.Unlock()
	return ok
}

// reserveDirect reports whether a wait may sleep in the kernel itself,
// reserving a place among the direct sleepers if so (the caller releases
// it). Every wait does while under maxDirect; short timed waits get the
// first places, others only half of them, so that a burst of long waits
// leaves room for precise short ones.
func reserveDirect(deadline time.Time) bool {
	lim := maxDirect.Load()
	if deadline.IsZero() || time.Until(deadline) >= shortWait {
		lim /= 2
	}
	for {
		n := directSleepers.Load()
		if n >= lim {
			return false
		}
		if directSleepers.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// waitv is struct futex_waitv.
type waitv struct {
	val   uint64
	uaddr uint64
	flags uint32
	_     uint32
}

// useHub selects the wait path: the hub where the kernel has futex_waitv,
// the one-sleeper-per-word path otherwise. It is chosen once at start-up;
// MPIPC_FUTEX=legacy forces the old path, MPIPC_FUTEX=hub sends every
// wait through the hub (tests run all three).
var useHub atomic.Bool

func init() {
	mode := os.Getenv("MPIPC_FUTEX")
	useHub.Store(mode != "legacy" && haveWaitv())
	if mode != "hub" {
		maxDirect.Store(defaultMaxDirect)
	}
}

// haveWaitv probes futex_waitv: with no words the kernel that has it
// answers EINVAL, one that lacks it ENOSYS (or a seccomp filter's error).
func haveWaitv() bool {
	_, _, e := unix.RawSyscall6(sysFutexWaitv, 0, 0, 0, 0, 0, 0)
	return e == syscall.EINVAL
}

// Hub reports whether waits go through the futex_waitv hub (true) or
// through one sleeping thread per (process, word) (false).
func Hub() bool { return useHub.Load() }

// sysWaitv sleeps until one of v's words is woken or differs from its
// value, or until abs (CLOCK_MONOTONIC; nil for none), and returns the
// index the kernel reports.
func sysWaitv(v []waitv, abs *kernelTimespec) (int, syscall.Errno) {
	r, _, e := unix.Syscall6(sysFutexWaitv, uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)), 0, uintptr(unsafe.Pointer(abs)), unix.CLOCK_MONOTONIC, 0)
	return int(r), e
}

// probeWaitv asks whether the one word w faults, with a deadline already
// passed so it never sleeps.
func probeWaitv(w *waitv) syscall.Errno {
	var ts kernelTimespec
	_, _, e := unix.Syscall6(sysFutexWaitv, uintptr(unsafe.Pointer(w)), 1, 0, uintptr(unsafe.Pointer(&ts)), unix.CLOCK_MONOTONIC, 0)
	return e
}

// kernelTimespec is struct __kernel_timespec, which futex_waitv takes: 64
// bits of seconds on every architecture, where unix.Timespec has 32 on
// 32-bit ones.
type kernelTimespec struct{ sec, nsec int64 }

type hubKey struct {
	addr *uint32
	val  uint32
}

// A reg is one (word, value) a waiter thread sleeps on for this process's
// goroutines.
type reg struct {
	key   hubKey
	w     *waiter
	idx   int           // in w.regs; -1 once fired or removed (w.mu)
	done  chan struct{} // closed when fired
	err   error         // set before done closes: the word faulted
	fired atomic.Bool
	refs  atomic.Int32    // goroutines parked on done (changed under bucket mu)
	subs  []chan struct{} // WaitAny callers, told on fire (w.mu)
}

// A waiter is one thread sleeping in futex_waitv for the hub: its own
// goroutine (run), or a goroutine that waits on one of its words and runs
// its rounds meanwhile (borrow). At most one of them runs rounds at a time.
type waiter struct {
	mu       sync.Mutex
	regs     []*reg         // at most hubWords (mu)
	n        atomic.Int32   // len(regs), read unlocked to pick a waiter
	ctl      uint32         // control word: bumped on every change (atomic)
	sleeping atomic.Bool    // in futex_waitv, or about to be
	parked   bool           // run is parked on kick, or about to be (mu)
	borrowed bool           // a waiting goroutine runs the rounds (mu)
	linger   kernelTimespec // run's deadline while a registration lingers
	kick     chan struct{}
	vec      [waitvMax]waitv
	snap     [waitvMax]*reg
	idle     []*reg // registrations nobody waited on at the last wake
	busy     []*reg // registrations someone waited on at the last wake
	fired    int    // registrations fired since the last yield (mu)
}

// recheckHook, if set (by tests), runs between the look at a
// registration's goroutines and the read of its word, to widen that window.
var recheckHook atomic.Pointer[func()]

var hub struct {
	mu      sync.Mutex
	waiters []*waiter
}

// hubWait is Wait through the hub. The caller has checked *addr, ctx and
// the deadline; a zero deadline is none.
func hubWait(ctx context.Context, cdone <-chan struct{}, addr *uint32, val uint32, deadline time.Time) error {
	r, borrowed := join(addr, val, nil, true)
	if r == nil {
		return nil
	}

	var err error
	if borrowed {
		w := r.w
		err = w.borrow(ctx, cdone, r, deadline)
		leave(r, nil, true)
		w.unborrow()
		return err
	}
	if deadline.IsZero() {
		select {
		case <-r.done:
			err = r.err
		case <-cdone:
			err = ctx.Err()
		}
	} else {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-r.done:
			err = r.err
		case <-cdone:
			err = ctx.Err()
		case <-t.C:
			err = ErrTimeout
		}
		t.Stop()
	}

	leave(r, nil, false)
	return err
}

// join adds the caller to the registration of (addr, val), making one if
// there is none, and subscribes sub to its firing if sub is not nil. It
// returns nil if *addr != val (no registration is needed). With mayBorrow,
// a new registration whose waiter is idle is run by the caller itself
// (borrowed: the caller must call borrow).
func join(addr *uint32, val uint32, sub chan struct{}, mayBorrow bool) (r *reg, borrowed bool) {
	k := hubKey{addr, val}
	b := bucketOf(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	r = b.regs[k]
	if r == nil || r.fired.Load() {
		if atomic.LoadUint32(addr) != val {
			return nil, false
		}
		if b.regs == nil {
			b.regs = make(map[hubKey]*reg)
		}
		r = &reg{key: k, done: make(chan struct{})}
		b.regs[k] = r
		borrowed = register(r, mayBorrow)
		r.refs.Add(1)
	} else if r.refs.Add(1) == 1 {
		// Taking back a lingering registration: its word may have been
		// unmapped and another mapping put at the same address since the
		// kernel looked it up, so make the waiter enter the kernel again.
		r.w.mu.Lock()
		if r.idx >= 0 {
			r.w.poke()
		}
		r.w.mu.Unlock()
	}
	if sub != nil {
		r.w.mu.Lock()
		if r.idx < 0 { // fired meanwhile
			select {
			case sub <- struct{}{}:
			default:
			}
		} else {
			r.subs = append(r.subs, sub)
		}
		r.w.mu.Unlock()
	}
	return r, borrowed
}

// leave takes the caller (and sub) off r. With drop, a registration left
// by its last goroutine without firing is taken off its waiter at once
// (the caller is the waiter's runner, so the vector needs no poke).
func leave(r *reg, sub chan struct{}, drop bool) {
	b := bucketOf(r.key.addr)
	b.mu.Lock()
	if sub != nil {
		r.w.mu.Lock()
		if i := slices.Index(r.subs, sub); i >= 0 {
			r.subs = slices.Delete(r.subs, i, i+1)
		}
		r.w.mu.Unlock()
	}
	if r.refs.Add(-1) == 0 {
		if drop && !r.fired.Load() {
			r.w.mu.Lock()
			r.w.drop(r)
			r.w.mu.Unlock()
		}
		if r.fired.Load() && b.regs[r.key] == r {
			delete(b.regs, r.key)
		}
	}
	// A registration left by a timeout or a cancellation stays with its
	// waiter until the waiter next wakes, without a poke: the caller
	// usually waits again at once on the same (word, value) and takes it
	// back (a check interval's periodic timeout is the common case), at
	// the cost of one poke instead of two.
	b.mu.Unlock()
}

// hubWaitAny is WaitAny through the hub.
func hubWaitAny(ctx context.Context, cdone <-chan struct{}, addrs []*uint32, vals []uint32, deadline time.Time) error {
	sub := make(chan struct{}, 1)
	regs := make([]*reg, 0, len(addrs))
	defer func() {
		for _, r := range regs {
			leave(r, sub, false)
		}
	}()
	for i, a := range addrs {
		r, _ := join(a, vals[i], sub, false)
		if r == nil {
			return nil
		}
		regs = append(regs, r)
		if len(sub) > 0 {
			return nil
		}
	}
	var t <-chan time.Time
	if !deadline.IsZero() {
		tm := time.NewTimer(time.Until(deadline))
		defer tm.Stop()
		t = tm.C
	}
	select {
	case <-sub:
		for _, r := range regs {
			if r.fired.Load() && r.err != nil {
				return r.err
			}
		}
		return nil
	case <-cdone:
		return ctx.Err()
	case <-t:
		return ErrTimeout
	}
}

// register hands r to a waiter with room, starting one if all are full.
// It reports whether the caller borrows the waiter (see add).
func register(r *reg, mayBorrow bool) (borrowed bool) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, w := range hub.waiters {
		if w.n.Load() < hubWords {
			if ok, borrowed := w.add(r, mayBorrow); ok {
				return borrowed
			}
		}
	}
	w := newWaiter()
	hub.waiters = append(hub.waiters, w)
	_, borrowed = w.add(r, mayBorrow)
	go w.run()
	return borrowed
}

func newWaiter() *waiter {
	w := &waiter{kick: make(chan struct{}, 1), parked: true}
	w.vec[0] = waitv{uaddr: uint64(uintptr(unsafe.Pointer(&w.ctl))), flags: waitvU32 | waitvPrivate}
	return w
}

// add gives r to w if it has room. With mayBorrow, if w's goroutine is
// parked and nobody borrows w, the caller is made w's runner instead of
// waking that goroutine: it sleeps in futex_waitv itself, and a wake
// reaches it as directly as on the one-sleeper-per-word path. (Waking the
// waiter's goroutine would take a thread wake-up more, and readying a
// parked goroutine makes the scheduler wake an idle thread too: measured
// at 3 times the futex calls and 4.5 times the context switches per
// sleep of a W3 ping-pong.)
func (w *waiter) add(r *reg, mayBorrow bool) (ok, borrowed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.regs) >= hubWords {
		return false, false
	}
	r.w, r.idx = w, len(w.regs)
	w.regs = append(w.regs, r)
	w.n.Store(int32(len(w.regs)))
	if mayBorrow && w.parked && !w.borrowed {
		w.borrowed = true
		return true, true
	}
	w.poke()
	return true, false
}

// poke makes the waiter's runner rebuild its vector: a futex_waitv entered
// with the old control value returns at once, one already asleep is woken,
// a parked run goroutine is kicked unless a borrower runs the rounds. w.mu
// is held.
func (w *waiter) poke() {
	atomic.AddUint32(&w.ctl, 1)
	if w.sleeping.Load() {
		unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&w.ctl)), opWakePrivate, 1, 0, 0, 0)
	}
	if w.borrowed {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// unlink takes r out of w.regs; w.mu is held.
func (w *waiter) unlink(r *reg) {
	last := len(w.regs) - 1
	if r.idx != last {
		m := w.regs[last]
		w.regs[r.idx], m.idx = m, r.idx
	}
	w.regs[last] = nil
	w.regs = w.regs[:last]
	w.n.Store(int32(last))
	r.idx = -1
}

// fire releases r's goroutines; w.mu is held. A registration nobody waits
// on any more that was woken passes the wake on, so that a Wake(addr, 1)
// it took from a sleeper elsewhere is not lost.
func (w *waiter) fire(r *reg, err error) {
	if r.idx < 0 {
		return
	}
	w.unlink(r)
	r.err = err
	r.fired.Store(true)
	close(r.done)
	w.fired++
	for _, c := range r.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	r.subs = nil
	if err == nil && r.refs.Load() == 0 {
		Wake(r.key.addr, 1)
	}
}

// recheck fires the registrations of w.busy whose word no longer holds
// their value. A word is read only under its bucket lock while a
// goroutine is registered on it: that goroutine is then still inside its
// Wait, so the word is still mapped. (Reading it after an unlocked look
// at refs raced with a Wait that timed out and a caller that unmapped the
// word at once: a fault in the waiter thread.) It takes each word's bucket
// lock before w.mu, in the order hubWait does.
func (w *waiter) recheck() {
	hook := recheckHook.Load()
	for i, r := range w.busy {
		b := bucketOf(r.key.addr)
		b.mu.Lock()
		if r.refs.Load() > 0 {
			if hook != nil {
				(*hook)()
			}
			w.mu.Lock()
			if r.idx >= 0 && atomic.LoadUint32(r.key.addr) != r.key.val {
				w.fire(r, nil)
			}
			w.mu.Unlock()
		} else {
			// Left meanwhile: sweep it unless taken back.
			w.idle = append(w.idle, r)
		}
		b.mu.Unlock()
		w.busy[i] = nil
	}
	w.busy = w.busy[:0]
}

// sweep drops the registrations nobody waited on when the waiter woke
// (w.idle), unless a goroutine took one back since; their words are not
// read, as they may be unmapped. It takes each word's
// bucket lock before w.mu, in the order hubWait does.
func (w *waiter) sweep() {
	for i, r := range w.idle {
		b := bucketOf(r.key.addr)
		b.mu.Lock()
		if r.refs.Load() == 0 {
			w.mu.Lock()
			w.drop(r)
			w.mu.Unlock()
			if b.regs[r.key] == r {
				delete(b.regs, r.key)
			}
		}
		b.mu.Unlock()
		w.idle[i] = nil
	}
	w.idle = w.idle[:0]
}

// drop takes r, which nobody waits on, off w; w.mu is held.
func (w *waiter) drop(r *reg) {
	if r.idx < 0 {
		return
	}
	w.unlink(r)
	r.fired.Store(true)
	close(r.done)
	// It may have been woken along with the word the kernel reported:
	// pass that wake on. FUTEX_WAKE on a word unmapped meanwhile fails
	// harmlessly.
	Wake(r.key.addr, 1)
}

// lingerFor is how long a registration left by a timeout or cancellation
// stays with a waiter run by its goroutine, to be taken back by the next
// wait on the same word and value: the waiter sleeps no longer than that
// while it has one, so that it parks again (and may be borrowed) soon
// after its last goroutine left.
const lingerFor = 5 * time.Millisecond

// run is the waiter goroutine's loop. It runs rounds only while it has
// registrations and nobody borrows it; otherwise it parks on its kick
// channel.
func (w *waiter) run() {
	for {
		w.mu.Lock()
		if len(w.regs) == 0 || w.borrowed {
			w.parked = true
			w.mu.Unlock()
			<-w.kick
			continue
		}
		w.parked = false
		var abs *kernelTimespec
		for _, r := range w.regs {
			if r.refs.Load() == 0 {
				if ts, _ := absDeadline(time.Now().Add(lingerFor)); ts != nil {
					w.linger = kernelTimespec{sec: int64(ts.Sec), nsec: int64(ts.Nsec)}
					abs = &w.linger
				}
				break
			}
		}
		_, fired := w.round(abs)
		w.mu.Unlock()
		if fired > 0 {
			// The goroutines just readied wait on this thread's P, which
			// the next futex_waitv would hold in a blocking system call
			// until the scheduler's monitor takes it back (up to 10 ms
			// when the process was idle): let them run first.
			runtime.Gosched()
		}
	}
}

// borrow runs w's rounds in the calling goroutine, which waits on r, until
// r fires, the deadline passes or ctx is done. The caller was made the
// runner by add; it calls unborrow after leaving r.
func (w *waiter) borrow(ctx context.Context, cdone <-chan struct{}, r *reg, deadline time.Time) error {
	var abs *kernelTimespec
	var err error
	if !deadline.IsZero() {
		var ts *unix.Timespec
		if ts, err = absDeadline(deadline); ts != nil {
			abs = &kernelTimespec{sec: int64(ts.Sec), nsec: int64(ts.Nsec)}
		}
	}
	stop := func() bool { return false }
	if cdone != nil {
		stop = context.AfterFunc(ctx, func() {
			w.mu.Lock()
			w.poke()
			w.mu.Unlock()
		})
	}
	w.mu.Lock()
	for err == nil {
		if r.idx < 0 {
			err = r.err
			break
		}
		if cdone != nil && ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		timedOut, fired := w.round(abs)
		switch {
		case r.idx < 0:
			err = r.err
		case timedOut:
			err = ErrTimeout
		case fired > 0:
			w.mu.Unlock()
			runtime.Gosched() // as in run
			w.mu.Lock()
		}
		if r.idx < 0 {
			break
		}
	}
	w.mu.Unlock()
	stop()
	return err
}

// unborrow hands w's rounds back to its goroutine, which parks again at
// once if no registration remains.
func (w *waiter) unborrow() {
	w.mu.Lock()
	w.borrowed = false
	if len(w.regs) > 0 {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// round sleeps once in futex_waitv on w's registrations and fires those
// woken, until abs (nil: no deadline). It is called and returns with w.mu
// held, by w's runner only (run or a borrower), with a registration at
// least; it reports whether the deadline passed and how many
// registrations fired since the last round (WakeLocal's included).
func (w *waiter) round(abs *kernelTimespec) (timedOut bool, fired int) {
	n := len(w.regs)
	w.vec[0].val = uint64(atomic.LoadUint32(&w.ctl))
	for i, r := range w.regs {
		w.vec[i+1] = waitv{val: uint64(r.key.val), uaddr: uint64(uintptr(unsafe.Pointer(r.key.addr))), flags: waitvU32}
		w.snap[i+1] = r
	}
	w.sleeping.Store(true)
	w.mu.Unlock()
	idx, e := sysWaitv(w.vec[:n+1], abs)
	w.sleeping.Store(false)

	w.mu.Lock()
	switch e {
	case 0:
		if idx >= 1 && idx <= n {
			w.fire(w.snap[idx], nil)
		}
	case syscall.EAGAIN, syscall.EINTR:
	case syscall.ETIMEDOUT:
		timedOut = true
	default:
		// EFAULT: a word is no longer mapped. Find it alone, so
		// that only its goroutines see the error.
		for i := 1; i <= n; i++ {
			if pe := probeWaitv(&w.vec[i]); pe != syscall.EAGAIN && pe != syscall.ETIMEDOUT && pe != syscall.EINTR {
				w.fire(w.snap[i], pe)
			}
		}
	}
	for i := 1; i <= n; i++ {
		r := w.snap[i]
		w.snap[i] = nil
		if r.idx < 0 {
			continue
		}
		if r.refs.Load() == 0 {
			// Its word may be unmapped by now: do not read it.
			w.idle = append(w.idle, r)
		} else {
			w.busy = append(w.busy, r)
		}
	}
	w.mu.Unlock()
	w.recheck()
	w.sweep()
	w.mu.Lock() // WakeLocal fires from other goroutines too
	fired = w.fired
	w.fired = 0
	return timedOut, fired
}
