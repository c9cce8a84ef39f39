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
// program dies at 10,000 threads. So [Wait] lets at most one goroutine per
// (process, word) sleep in the kernel, the leader; the others park in the Go
// scheduler behind it. Whenever the leader returns from the kernel, for any
// reason, it releases every goroutine parked behind it, and each re-checks
// its own condition. Since the futex contract already allows spurious
// wakeups, this costs correctness nothing: a Wake(addr, 1) that reaches this
// process releases all of its waiters on addr instead of one, and the
// primitives above are written for that.
//
// # Spinning
//
// Waking a sleeping process on another CPU costs 10-25 µs on the machines we
// measure, while a handoff between two running processes costs about 60 ns.
// Primitives therefore spin briefly with [Spin] before they register as
// waiters and sleep. The spin is bounded, yields the processor in its second
// half, and adapts: a process whose spins keep failing spins less.
//
// # Caveats
//
//   - Words must be 4-byte aligned and live in memory mapped MAP_SHARED (or
//     ordinary memory, for in-process use).
//   - A context's cancellation wakes the leader with a FUTEX_WAKE_BITSET
//     aimed at this process's bit (pid mod 32); leaders of other processes
//     that share the bit see a spurious wakeup.
//   - Only little-endian 64-bit Linux (amd64, arm64) is supported.
package futex
