// Package rlock provides RLock, a recursive lock shared between processes:
// Python's multiprocessing.RLock, built on the robust futex lock word of
// package lock and made robust against an owner that dies.
//
// An RLock lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [Size], [Align]).
//
// # Ownership
//
// The owner is a goroutine in a process: the lock word records the process
// (its process registry identity, as for lock.Lock) and a second shared word records
// the goroutine. The owner may acquire the RLock again, raising its level;
// each Release lowers it, and the release from level 1 frees the lock and
// wakes one waiter. Any other goroutine — of the same process or of
// another — blocks in Acquire exactly as another process does, and gets
// [ErrNotOwner] from Release. [RLock.ReleaseAll] and [RLock.AcquireLevel]
// release and restore the whole level in one step, for a Condition's Wait.
//
// # Goroutine identity and its cost
//
// A goroutine is named by its runtime id (the number in "goroutine 7
// [running]"). The runtime never reuses an id within a process, so a
// goroutine that exits holding an RLock can never be taken for a later
// one, as a reused g (the runtime's goroutine structure, recycled after a
// goroutine exits) could. The id is read from the runtime's g: two
// instructions of assembly return g (amd64: the TLS slot; arm64: register
// R28), and the id is the 64-bit field at an offset that package init
// finds by comparing g's words with the id parsed from runtime.Stack in
// five goroutines. Reading it costs about 3 ns (BenchmarkGoid: 2.7 ns on
// the 2-vCPU Xeon we test on) and never allocates. On another
// architecture, or if a future runtime no longer stores the id as a
// 64-bit field in g's first 256 bytes, every call parses runtime.Stack
// instead: correct, but about 2.3 µs and one 64-byte allocation per call
// (BenchmarkGoidSlow).
//
// The uncontended Acquire is the lock word's compare-and-swap and one
// release store of the goroutine id (an Acquire that finds the word free
// needs no ownership check: a free lock is nobody's); the Release from
// level 1 checks ownership with two loads, clears the id with a release
// store and frees the word with a compare-and-swap. The stores are plain
// MOVs on amd64 and STLR on arm64 (assembly beside getg), not
// atomic.StoreUint64's full fence: only the owner writes these words,
// while it holds the lock word. No syscall, no allocation: about 23 ns of
// thread CPU time against lock.Lock's 18 ns here (it was 38 ns with
// sequentially consistent stores and the ownership check first). A
// recursive Acquire/Release pair by the owner is a few loads and two
// release stores.
//
// # Owner death
//
// A waiter checks every Options.CheckInterval (default 100 ms) whether the
// owner process still runs. If it died holding the RLock, at any level,
// the next acquirer takes the lock over at level 1 and gets
// [ErrOwnerDead]; it repairs what the lock guards, calls
// [RLock.Consistent], and releases as usual. An RLock whose last release
// comes without Consistent becomes not recoverable: every later acquire
// returns [ErrNotRecoverable]. This is the contract of a robust pthread
// mutex and of package lock.
//
// # Caveats
//
//   - Ownership is per goroutine, as Python's is per thread: a goroutine
//     cannot release an RLock another goroutine acquired, even in the same
//     process. Hand a held RLock to another goroutine by releasing it.
//   - A goroutine that exits while owning an RLock leaves it held until its
//     process exits; then the next acquirer gets ErrOwnerDead.
//   - Goroutine identity reads the runtime's g with assembly and a
//     calibrated offset (see above): a Go release that changes g's layout
//     falls back to the slow, allocating path, never to a wrong answer,
//     because init only trusts an offset that matched in five goroutines.
//   - The level is a 32-bit counter: acquiring beyond MaxLevel returns
//     ErrLevel.
//   - An RLock placed with Init/Attach without Options.Registry cannot
//     tell a dead owner: waiters wait as on an ordinary lock.
package rlock
