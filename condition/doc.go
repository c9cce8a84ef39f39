// Package condition provides Condition, a condition variable shared
// between processes: Python's multiprocessing.Condition, bound to a
// lock.Lock or rlock.RLock of this module.
//
// A Condition lives in a segment by name ([Create], [Open]) or in memory
// the caller owns ([Init], [Attach], [SizeOf], [Align]). Given no lock
// (an empty lock name for Create, nil for Init) it makes an RLock of its
// own, as Python's Condition() does; that RLock lives inside the
// Condition's own memory (not as a separate named object), and is reached
// through [Condition.Acquire], [Condition.Release] and [Condition.Lock].
// Bound to a named Lock or RLock, the Condition records the lock's name,
// and Open opens it too. Several Conditions may share one lock (a bounded
// buffer's "not empty" and "not full").
//
// # Waiting and notifying
//
// Wait must be called holding the lock. It takes a slot in the waiter
// table (a futex word with a state, a FIFO ticket and the waiter's
// process), then releases the lock completely — whatever an RLock's
// level — spins watching its slot (about 10 µs, what a sleep and a wake
// would cost), then sleeps on it. Notify(n), also under the lock, marks
// the n oldest waiting slots notified and makes a futex wake only for
// those that sleep. The waiter then watches the lock word until it looks
// free, reacquires the lock to its former level and returns. Because the slot is taken before
// the lock is released:
//
//   - a Notify made after a waiter released the lock reaches it (no lost
//     wakeup);
//   - a Notify with nobody waiting marks nothing and is not remembered;
//   - a waiter whose timeout or context ends withdraws its slot with a
//     compare-and-swap that races the Notify's: one of the two wins, so a
//     Notify either reaches a waiter that returns notified or passes to
//     the next waiter. A timed-out waiter never swallows a Notify meant
//     for another.
//
// Futex wakeups that are not notifications (kernel-level spurious
// wakeups, or wakes from another process's context cancellation) are
// absorbed: the waiter re-reads its slot and sleeps again.
//
// # Binary layout
//
// A header (magic "mpcv", version, table size, lock kind, a reserved
// word, next ticket, notify sequence), the bound lock's name (48 bytes), the
// own RLock (64 bytes), an occupancy bitmap, and the slots, 64 bytes each
// so that a spinning waiter's word has its cache line to itself. The
// comment at the top of condition.go gives every offset.
//
// # Failure
//
// When the lock's holder died, Wait's reacquire returns the lock with
// [ErrOwnerDead]; Wait passes it up (the caller holds the lock, repairs,
// and calls the lock's Consistent). A waiter whose process dies while
// waiting leaves its slot behind. While a waiter sleeps, its process's
// liveness checker (one goroutine for all the process's sleepers, which
// do not wake for it) checks every Options.CheckInterval (default 100 ms)
// whether other waiters' processes are alive: it withdraws the slots of
// dead ones, so that later Notifies
// skip them, and passes a Notify that had already reached a dead waiter to
// the oldest live waiter that was waiting when that Notify was made. So a
// Notify(1) that lands on a dead waiter is delayed by at most about one
// CheckInterval, never lost while a waiter that could take it sleeps.
// The same look wakes a sleeper of the process whose Notify came without
// its wake (the notifier was killed in between). Slots of dead processes
// are freed when the table fills.
//
// Which slots are taken is the bitmap alone (no count beside it that a
// kill could leave out of step): a waiter writes its slot's owner before
// it sets its bit, so a waiter killed at any instruction of Wait leaves at
// most a set bit over a slot that names it, and that slot is freed when
// the bitmap is next found full. A Wait on an idle Condition after any
// kill times out cleanly.
//
// # Caveats
//
//   - A Wait that sleeps first spins about 10 µs of CPU time. With more
//     runnable threads than CPUs that time may be the partner's, so after
//     eight waits in a row (on any object of this process, see
//     [futex.Spin]) that slept, only one wait in eight spins that long,
//     until one wait's spin succeeds; a process whose Waits mostly sleep (a worker
//     idle between jobs) spends about 1.3 µs of spin per Wait.
//   - The waiter table is bounded (Options.Slots, default 128, 64 bytes
//     each): a Wait beyond it returns [ErrTooManyWaiters] after freeing
//     the slots of dead processes.
//   - Each goroutine that sleeps in Wait sleeps on its own futex word.
//     Through the futex hub that costs no OS thread; on kernels without
//     futex_waitv it holds one, and the table size bounds those threads.
//   - Wait always returns holding the lock (but for ErrNotRecoverable),
//     also when its context ends: reacquiring the lock is not
//     cancellable, as with sync.Cond and pthread_cond_wait.
//   - WaitTimeout with a timeout of zero or less returns false without
//     releasing the lock (Python releases and reacquires it; no Notify
//     can reach such a waiter either way unless another thread slips in).
//   - For a Condition bound to a Lock, "holding the lock" means the Lock
//     is held by anyone, as in Python: a Lock has no owner to check.
//   - Calling Wait on a lock acquired with ErrOwnerDead before calling its
//     Consistent releases it unrepaired, which makes it not recoverable.
//   - A slot's generation is 29 bits: a waiter that checks for dead
//     processes could withdraw a live slot only if that slot were taken
//     2^29 times during one check.
package condition
