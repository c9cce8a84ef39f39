// Package futex is the one way every mpipc primitive sleeps and wakes: the
// Linux futex system call on a 32-bit word in shared memory, wrapped so that
// goroutines, timeouts and contexts behave.
//
// # The kernel contract
//
//	Wait(addr, val):  atomically { if *addr == val { sleep on addr } }
//	                  returns when woken, on a signal, on timeout, or
//	                  spuriously; the caller re-checks its condition.
//	Wake(addr, n):    wake at most n sleepers on addr, in any process.
//
// The operations are shared (never FUTEX_PRIVATE_FLAG), so sleepers and
// wakers in different processes that map the same file meet on the same
// kernel futex queue.
//
// # Goroutines are not threads
//
// A goroutine blocked in the futex system call holds an OS thread, and a Go
// program dies at 10,000 threads. So goroutines never sleep in the kernel
// themselves: [Wait] registers (word, value) with a waiting hub and parks
// the goroutine in the Go scheduler. A few hub threads each sleep in
// futex_waitv (Linux 5.16) on up to 127 registered words plus a private
// control word, through which goroutines add or remove registrations
// without waiting for a real wake. Goroutines of one process that wait on
// the same word and value share one registration. A wake on a word releases
// every goroutine of this process registered on it, and each re-checks its
// own condition; the futex contract already allows spurious wakeups, so a
// Wake(addr, 1) that reaches this process releasing all its waiters on addr
// costs correctness nothing, and the primitives above are written for it.
// Timeouts and cancellations are the goroutine's own (a Go timer, the
// context's Done channel), so a cancelled wait returns at once.
//
// A hub thread is borrowed when it can be: the first goroutine to register
// with a waiter whose own goroutine is parked (it has nothing to wait on)
// runs the waiter's futex_waitv itself, with its deadline given to the
// kernel, serves the registrations that join meanwhile, and hands them
// back to the waiter's goroutine when its own word fires. A lone wait then
// costs what a plain FUTEX_WAIT does; otherwise the hub thread's wake and
// the scheduler's readying of the goroutine cost a sleep two more thread
// wake-ups. Still, while few goroutines of the process sleep (up to 32 at
// once), a wait sleeps in the kernel itself, on the path below, and only
// the others go through the hub; short timed waits (under 2 ms) prefer the
// kernel too, as a Go timer may fire a millisecond late in an idle process.
//
// On kernels without futex_waitv (ENOSYS), chosen once at start-up, or
// when the environment variable MPIPC_FUTEX=legacy is set, [Wait] lets at
// most one goroutine per (process, word) sleep in the kernel, the leader,
// and parks the others behind it; [Hub] reports which path is in use.
// MPIPC_FUTEX=hub sends every wait through the hub (for tests).
//
// # Timeouts
//
// [After] is the one way the module turns a timeout into a deadline:
// saturating, so that a timeout of [MaxTimeout] or more (math.MaxInt64
// included) waits forever instead of failing. [Wait] never reports
// [ErrTimeout] before its deadline by the monotonic clock: it reads the
// clock again before it does.
//
// # Spinning
//
// Waking a sleeping process on another CPU costs 10-25 µs on the machines we
// measure, while a handoff between two running processes costs about 60 ns.
// Primitives therefore spin briefly with [Spin] before they register as
// waiters and sleep. The spin is bounded, yields the processor in its second
// half, and adapts: after eight spins in a row that failed, a process
// spins about half a microsecond, but one spin in eight still runs the
// full budget (on more than one CPU), and its success restores it (two
// processes waiting on each other would otherwise both settle at the short
// budget and sleep on every message).
//
// # Caveats
//
//   - Words must be 4-byte aligned and live in memory mapped MAP_SHARED (or
//     ordinary memory, for in-process use).
//   - A word registered with the hub must stay mapped while goroutines
//     wait on it; an unmapped word ends their waits with EFAULT.
//   - On the legacy path, a context's cancellation wakes the leader with a FUTEX_WAKE_BITSET
//     aimed at this process's bit (pid mod 32); leaders of other processes
//     that share the bit see a spurious wakeup.
//   - Linux only, on any architecture (the spin's CPU hint is assembly on
//     amd64 and arm64, a plain loop elsewhere). On other systems Wait and
//     WaitAny fail with an error wrapping [errors.ErrUnsupported].
package futex
