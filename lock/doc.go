// Package lock provides Lock, a non-recursive lock shared between
// processes: Python's multiprocessing.Lock, built on a futex and made
// robust against a holder that dies.
//
// A Lock lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [Size], [Align]). The uncontended
// Acquire/Release pair is one compare-and-swap each: no syscall, no
// allocation. A contended Acquire spins briefly, then sleeps on the futex;
// Release wakes one sleeper.
//
// # Owner death
//
// The lock word records the holder's identity in the segment's process
// registry (a slot and its generation; see shm.Registry), never a pid. A
// waiter checks every Options.CheckInterval (default 100 ms) whether the
// holder still holds its registry slot (one fcntl); a holder in another
// pid namespace, or stopped with SIGSTOP, is alive, whether or not /proc
// is mounted. If the holder died, the waiter takes the lock and gets
// [ErrOwnerDead]. It must repair what the
// lock guards, call [Lock.Consistent], and release. A lock released without
// Consistent becomes not recoverable: every later acquire returns
// [ErrNotRecoverable]. This is the contract of a robust pthread mutex.
//
// # Caveats
//
//   - Any process may release a held Lock (as in Python). The holder
//     recorded is the acquirer; a release by another process is allowed.
//   - A Lock placed with Init/Attach without Options.Registry cannot tell
//     a dead holder: waiters wait as on an ordinary lock.
//   - TryAcquire on a held lock asks the registry (one fcntl) whether the
//     holder is alive.
package lock
