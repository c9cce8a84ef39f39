// Package release stores a word in shared memory with release order only:
// every store the caller made before it is visible to any process that
// loads the word (with an atomic load) and then reads those locations.
//
// It is for words that only the holder of a lock writes, published to
// readers by that lock or by a later full barrier (a compare-and-swap, an
// atomic Or or And): Go's atomic.Store on amd64 is an XCHG, a locked
// instruction and a full barrier that waits for the word's cache line,
// which such a writer does not need. On amd64 (without the race
// detector) Store32 and Store64 are one aligned MOV, atomic (never torn)
// and, under x86's total store order, a release store; as calls to
// assembly functions they also keep the compiler from moving earlier
// stores after them. Elsewhere, and under the race detector (which must
// see an atomic), they are atomic.Store, already a store-release (STLR)
// on arm64.
//
// A later load of another word may be performed before a release store
// is visible: a caller whose readers need the store before such a load
// puts a full barrier between them.
package release
