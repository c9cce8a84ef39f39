// Package array provides Array and RawArray: a fixed-length array of T
// shared between processes, Python's multiprocessing.Array and RawArray.
//
// T is any fixed-size type without pointers (numbers, bool, arrays and
// structs of them; see package internal/typeinfo); any other T is refused
// with an error wrapping typeinfo.ErrUnsupportedType. The element type's
// layout fingerprint is stored in the header, so attaching with another T,
// even a struct of the same size with other fields, fails with
// shm.ErrTypeMismatch.
//
// An Array lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [SizeOf], [Align]). Initial values come
// from a slice, the rest are zero:
//
//	a, err := array.Create(seg, "a", 10, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil) // Array('i', range(10))
//	d, err := array.Create[float64](seg, "d", 5, nil, nil)                         // Array('d', 5)
//
// Array takes its lock around every access (At, Set, CopyOut, CopyIn,
// Slice, each chunk of All, Value, SetValue, Raw, SetRaw, SetSlice) and exposes it with Lock;
// Update(i, j, fn) runs fn on the shared elements themselves under the
// lock, for compound changes and for bulk loops without a copy. RawArray
// has no lock, and View returns the shared elements as a []T (zero copy,
// unsynchronized).
//
// Index errors behave as on a Go slice: the bounds are checked, with Go's
// own checks and messages ("index out of range [4] with length 4"), before
// anything is locked or touched, and the call panics. Nothing ever reads or
// writes outside the Array.
//
// An Array of a one-byte integer type (byte, uint8, int8) is also
// Python's char array: Value returns the bytes up to the first NUL,
// SetValue stores bytes and a terminating NUL when there is room, Raw
// returns all the bytes.
//
// # The default lock
//
// The default is the Array's own rlock.RLock, placed inside the Array:
// recursive, as Python's default, so the idiom "with arr.get_lock():
// arr[i] += 1" — Lock().Acquire, At, Set, Release — works although At and
// Set take the lock themselves. Options.Lock lets an Array share a lock
// with other objects (a Value's Lock(), a lock.Lock); with a non-recursive
// lock, calling Array methods while holding it deadlocks. Every process
// must pass the same lock.
//
// # A process that dies holding the lock
//
// A process killed in the middle of CopyIn, Set, SetSlice or Update leaves
// the elements it was writing half written, and its lock held. The next
// method to take the lock, in any process, takes it over as a robust mutex
// allows (lock.ErrOwnerDead), marks the lock consistent so that it stays
// usable, and marks the Array inconsistent in shared memory. From then
// on, until a process repairs the elements and calls Consistent, the
// methods that return errors (Update, SetSlice, SetValue, SetRaw,
// CopyInContext, CopyOutContext) do their work and return an error
// wrapping ErrOwnerDead (errors.Is), and Err returns it, in every process:
//
//	err := a.Update(0, a.Len(), fn)
//	if errors.Is(err, array.ErrOwnerDead) {
//		// fn ran on elements a dead writer may have half written:
//		// rewrite them (under the lock, with Update or SetSlice), then:
//		a.Consistent()
//	}
//
// The methods without an error (At, Set, CopyIn, CopyOut, Slice, All,
// Value, Raw) keep their signatures and go ahead; a caller that must know
// calls Err after them, or uses CopyInContext and CopyOutContext, which
// also give up when their context ends before a stopped holder lets go. A process that dies holding the lock between two
// writes is indistinguishable from one that died in the middle of one, so
// both mark the Array. A RawArray has no lock and is never marked.
//
// # Binary layout
//
// Little-endian, 64-byte aligned, SizeOf[T](n) = 128 + n*size rounded up
// to 64 bytes:
//
//	offset 0    uint32  magic 0x7261706d ("mpar")
//	offset 4    uint32  layout version (1)
//	offset 8    uint64  length n
//	offset 16   uint64  element size
//	offset 24   uint64  element type fingerprint (package internal/typeinfo)
//	offset 32   uint32  flags: bit 0 = own lock at offset 64;
//	                    bit 1 = inconsistent (lock taken over from a dead
//	                    holder, Consistent not yet called)
//	offset 36   uint32  element alignment
//	offset 40   reserved, zero
//	offset 64   own RLock (package rlock layout), when flag bit 0
//	offset 128  elements: element i at 128 + i*size, in T's natural
//	            (Go and C) layout
//
// A C program reads the elements as a T[n] at offset 128, taking the lock
// word at offset 64 (package internal/robust protocol) for an Array.
//
// # Caveats
//
//   - At and Set take the lock for one element: use CopyOut, CopyIn or
//     Update for bulk access.
//   - Update's slice aliases shared memory: do not keep it after fn
//     returns.
//   - All copies 64 elements per lock hold: each chunk is consistent, the
//     whole iteration is not a snapshot (use Slice for one).
//   - Element methods (At, Set, CopyIn, CopyOut, Slice, All, Value, Raw)
//     have no error to return: when one takes the lock over from a dead
//     holder it marks the Array inconsistent and goes ahead (call Err
//     after it); a lock that cannot be acquired at all (not recoverable,
//     or a word a corrupting peer wrote) is skipped, so the access is
//     unsynchronized but still bounds-checked. Update returns the lock's
//     error instead.
//   - With a lock shared by several objects (Options.Lock), only the
//     object whose method took the lock over is marked inconsistent: to
//     repair state that spans several objects, acquire the lock yourself
//     and handle lock.ErrOwnerDead.
//   - A Go loop is not vectorized: a bulk sum reads shared memory at
//     about two thirds of the speed of gcc's vectorized C loop (W9).
package array
