//go:build amd64 && !race

package dict

// storeRelease stores v at p with release ordering: every store this
// goroutine made before it is visible to any process that loads v from p
// (with an atomic load) and then reads those locations. It publishes a
// writer's entry (its control word) and the stripe counts.
//
// On amd64 it is one aligned MOV, which is atomic (never torn) and, under
// x86's total store order, a release store; being a call to an assembly
// function, it also keeps the compiler from moving earlier stores after
// it. Go's atomic.StoreUint64 is an XCHG, a locked instruction and a full
// barrier that the writer, who holds the stripe lock, does not need: it
// cost as much as taking the lock (the queue's tail hint makes the same
// choice, see ringbuf.qStoreHint).
//
//go:noescape
func storeRelease(p *uint64, v uint64)
