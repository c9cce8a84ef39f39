// Package semaphore provides Semaphore and BoundedSemaphore, counting
// semaphores shared between processes: Python's multiprocessing.Semaphore
// and BoundedSemaphore, built on one futex word.
//
// A semaphore lives in a segment by name ([Create], [Open],
// [CreateBounded], [OpenBounded]) or in memory the caller owns ([Init],
// [Attach], [InitBounded], [AttachBounded], [Size], [Align]). Acquire
// takes one unit and blocks while the value is zero; Release(n) adds n
// units and wakes waiters to take them. A BoundedSemaphore refuses, with
// [ErrReleasedTooMany], a Release that would raise it above its initial
// value, and changes nothing.
//
// # Binary layout
//
// A semaphore is Size (64) bytes, Align-aligned, little-endian:
//
//	offset 0   uint32  state word: bit 0 waiters, bits 1..31 value
//	offset 4   uint32  magic "mpsm"
//	offset 8   uint32  layout version (Version)
//	offset 12  uint32  kind: 1 Semaphore, 2 BoundedSemaphore
//	offset 16  uint32  bound (BoundedSemaphore's initial value, else 0)
//
// # Cost
//
// An uncontended Acquire is one load and one compare-and-swap; an
// uncontended Release one compare-and-swap; neither makes a system call or
// allocates. A Release makes the futex wake system call only when the
// waiters bit says that someone may sleep. An Acquire that finds the value
// at zero first polls the word (about 1-3 µs) and then spins
// ([futex.Spin]), so that a Release from a running process on another CPU
// is taken without either side entering the kernel; only then does it set
// the waiters bit and sleep.
//
// # Caveats
//
//   - The waiters bit is a flag, not a count. A Release that finds it set
//     clears it and wakes every sleeper, in every process; those that find
//     no unit left set it again and sleep. With many sleepers and
//     Release(1), that is a thundering herd; it buys robustness: a waiter
//     killed while registered leaves at most the bit set, which costs the
//     next Release one extra wake system call, and never wedges the
//     semaphore.
//   - Wakeups are not FIFO: a process that arrives while others sleep may
//     take the unit first, as with Python's semaphore on Linux.
//   - A process that dies after Acquire and before Release takes its unit
//     with it; a semaphore, unlike a Lock, has no owner to detect. Use a
//     Lock where that matters.
//   - The value is at most [MaxValue] (2^31-1); Release beyond it returns
//     [ErrOverflow].
//   - Value is a snapshot for inspection; acting on it races with other
//     processes.
package semaphore
