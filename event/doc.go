// Package event provides Event, a flag shared between processes that
// processes wait for: Python's multiprocessing.Event (and
// threading.Event), built on one futex word.
//
// An Event lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [Size], [Align]). Set raises the flag and
// releases every waiter in every process; Clear lowers it; IsSet reads it;
// Wait and WaitTimeout block until it is set. Event has its own package
// (rather than living in condition/) because it needs no lock: the flag,
// a waiters bit and a generation counter share one 32-bit word.
//
// # Binary layout
//
// An Event is Size (64) bytes, Align-aligned, little-endian:
//
//	offset 0   uint32  state word: bit 0 set, bit 1 waiters,
//	                   bits 2..31 generation
//	offset 4   uint32  magic "mpev"
//	offset 8   uint32  layout version (Version)
//
// # Semantics
//
// Every Set that raises the flag bumps the generation. A waiter notes the
// generation when it starts and returns true as soon as the flag is set or
// the generation has moved. So a Set followed at once by a Clear releases
// every process that was waiting, even one that is scheduled only after
// the Clear — the guarantee of Python's Event, which notifies all waiters
// under its lock.
//
// # Cost
//
// IsSet is one atomic load; Set on a set Event is one atomic load; Wait on
// a set Event is one atomic load. None of them makes a system call or
// allocates. Set on a clear Event is one compare-and-swap, plus a futex
// wake system call only when the waiters bit says someone may sleep. A
// waiter polls and spins ([futex.Spin]: about 10 µs, what a sleep and a
// wake cost) before it sets the waiters bit and
// sleeps, so that a Set from a running process on another CPU is seen
// without either side entering the kernel.
//
// # Caveats
//
//   - A Wait that sleeps first spins about 10 µs of CPU time. With more
//     runnable threads than CPUs that time may be the partner's, so after
//     eight waits in a row (on any object of this process, see
//     [futex.Spin]) that slept, only one wait in eight spins that long,
//     until one wait's spin succeeds; a process whose Waits mostly sleep (a worker
//     idle between jobs) spends about 1.3 µs of spin per Wait.
//   - A waiter killed while registered leaves the waiters bit set; the next
//     Set makes one wake system call for nobody and clears it.
//   - The generation has 30 bits. A waiter that sleeps through exactly a
//     multiple of 2^30 Set/Clear pairs without running would not notice
//     them.
//   - There is no owner: an Event never reports a dead process. A waiter
//     whose setter died waits until its timeout or context ends.
package event
