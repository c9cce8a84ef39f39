// Package value provides Value and RawValue: one typed value shared
// between processes, Python's multiprocessing.Value and RawValue.
//
// T is any fixed-size type without pointers: integers of every width,
// floats, complex numbers, bool, and arrays and structs of them (see
// package internal/typeinfo). Any other T is refused with an error
// wrapping typeinfo.ErrUnsupportedType. The type's layout fingerprint is
// stored with the value, so opening it with another T, even a struct of the
// same size with other fields, fails with shm.ErrTypeMismatch.
//
// A Value lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [SizeOf], [Align]).
//
//	counter, err := value.Create[int64](seg, "requests", 0, nil)
//	counter.Add(1)                 // one LOCK XADD: atomic, unlike Python's v.value += 1
//	counter.Update(func(n *int64) { *n *= 2 }) // under counter.Lock()
//
// # Atomicity without the lock
//
// Every operation on the value is atomic by itself:
//
//   - T of at most 8 bytes lives in one aligned word. Load, Store, Swap
//     and CompareAndSwap are one atomic instruction each; Add is one
//     atomic instruction for 4- and 8-byte integers and a compare-and-swap
//     loop for other numbers.
//   - A wider T is double-buffered behind a sequence word (see the layout
//     below). Load copies the current slot and checks the sequence did not
//     move: it never blocks a writer and never returns a torn value.
//     Writers serialize on a robust writer lock inside the Value; a writer
//     killed mid-write leaves only the unpublished slot half-written, so
//     readers are not affected at all, and the next writer takes the
//     writer lock over within Options.CheckInterval. A writer that is
//     stopped (SIGSTOP) holding it is alive, so the next writer waits for
//     it: Store, Swap and CompareAndSwap have bounded forms (Try...,
//     ...Timeout, ...Context) for that, and UpdateContext honours its
//     context while it waits.
//
// The lock that Lock returns (Python's get_lock()) is for compound
// operations: Update takes it, and a process that holds it (directly or
// through Update) excludes other Updates and other holders, for example
// to change a Value and an Array sharing one lock together. Load, Store,
// Swap, CompareAndSwap and Add do not take it.
//
// # The default lock
//
// The default is the Value's own rlock.RLock (64 bytes inside the Value),
// recursive as Python's default lock: the tutorial idiom "with
// v.get_lock(): v.value += 1" — Lock().Acquire, then Load, Store or even
// Update, then Release — works, and works alike for Array, whose element
// access takes the lock. Load and Store never take the lock. Lock()
// returns a Locker with all three blocking forms. Any Locker works in
// Options.Lock (a lock.Lock is cheaper when nobody re-enters it), and all
// processes must pass the same one.
//
// # A process that dies holding the lock
//
// As with a robust mutex (lock.ErrOwnerDead), a process that dies holding
// the Value's lock may have left half done whatever it did under it, for
// example a change to this Value and an Array sharing the lock. The Update
// that takes such a lock over marks the Value inconsistent in shared
// memory, and from then on every Update, in every process, returns its
// result with an error wrapping ErrOwnerDead (errors.Is), and Err returns
// that error, until a process repairs and calls Consistent:
//
//	x, err := v.Update(fn)
//	if errors.Is(err, value.ErrOwnerDead) {
//		// fn was applied; repair what the lock guards, then:
//		v.Consistent()
//	}
//
// Load, Store, Swap, CompareAndSwap and Add do not take the lock, so they
// neither mark nor check: they cannot return an error, and they need not,
// since the Value itself is never half written. The private writer lock of
// a wide T is different: a writer that dies holding it wrote only the slot
// that was never published, so the next writer takes it over silently and
// nothing is marked. A RawValue has no lock and is never marked.
//
// # Binary layout
//
// Little-endian, 64-byte aligned, SizeOf[T]() bytes (192 for T of at most
// 8 bytes; 128 + 2*S for a wider T, S = size of T rounded up to 64):
//
//	offset 0    uint32  magic 0x6c76706d ("mpvl")
//	offset 4    uint32  layout version (1)
//	offset 8    uint64  size of T
//	offset 16   uint64  fingerprint of T
//	offset 24   uint32  flags: bit 0 = own lock at offset 64;
//	                    bit 1 = inconsistent (lock taken over from a dead
//	                    holder, Consistent not yet called)
//	offset 28   uint32  alignment of T
//	offset 32   uint64  sequence (wide T): completed writes; current slot = sequence & 1
//	offset 40   uint64  writer lock word (wide T; package internal/robust)
//	offset 48   reserved, zero
//	offset 64   own RLock (package rlock layout), when flag bit 0
//	offset 128  T of at most 8 bytes: one 8-byte word, T in its low bytes
//	            wider T: slot 0 at 128, slot 1 at 128+S
//
// T is stored in its Go (and C) natural layout. A C reader of a wide T:
// s = load_acquire(seq); copy slot s&1; if load_acquire(seq) != s, retry.
// A C writer takes the writer lock (the robust lock word protocol of
// package internal/robust), writes slot (seq+1)&1, stores seq+1 with
// release order, and releases it.
//
// # Caveats
//
//   - Update(fn) on T of at most 8 bytes runs fn in a compare-and-swap
//     loop: fn may run more than once and must depend only on its
//     argument. Update allocates once per call (its argument escapes to fn).
//   - Calling Update while holding a non-recursive Options.Lock (a
//     lock.Lock) deadlocks; the default RLock re-enters.
//   - A wide Load retries while writers keep completing writes during its
//     copy; after 64 retries it queues on the writer lock once, so it
//     always finishes, but it may then wait for one writer.
//   - An Update that takes the lock over from a dead holder marks the lock
//     consistent, so that it stays usable, but marks the Value
//     inconsistent (see the section above). With a lock shared by several
//     objects (Options.Lock), only the object whose method took the lock
//     over is marked: to repair state kept across several objects,
//     acquire the lock yourself and handle lock.ErrOwnerDead.
//   - The private writer lock of a T wider than 8 bytes is always marked
//     consistent, so a not-recoverable or malformed word there can only be
//     a corrupting peer's: the next writer seizes it (the double buffer
//     keeps the published value intact) instead of refusing forever.
package value
