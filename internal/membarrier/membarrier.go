// Package membarrier makes a store that skipped its fence visible, on
// demand, from another process: the slow half of an asymmetric Dekker
// handshake.
//
// A sleeper/waker handshake across processes is a store-then-load on each
// side: the waker publishes data and then looks for a sleeper; the sleeper
// announces itself and then looks at the data. Both orders must hold, and
// on amd64 a store followed by a load needs a full barrier (a locked
// instruction), which on a ring's publishing store costs a cross-core
// round trip per message. With this package the waker's side, the hot
// one, is a plain store and a plain load; the sleeper, before its last
// look, calls [Global], which makes every running thread of every
// [Register]ed process pass through a full barrier (Linux membarrier,
// MEMBARRIER_CMD_GLOBAL_EXPEDITED). Either the waker's store is then
// visible to the sleeper's look, or the waker's load comes after the
// barrier and sees the sleeper.
//
// A process registers once, before it publishes without a fence; Register
// reports whether it could (kernel 4.16 or later, and a seccomp policy that
// lets it through). A process that could not must publish with a fence.
package membarrier

import "sync"

var (
	regOnce sync.Once
	regOK   bool
)

// Register makes this process a target of [Global] and reports whether it
// is: only then may it skip the fence before a load that a sleeper in
// another process relies on. It is called once; later calls return the
// first answer.
func Register() bool {
	regOnce.Do(func() { regOK = register() })
	return regOK
}

// Global returns after every running thread of every registered process
// has executed a full memory barrier. It reports false when the kernel
// refused (then nothing is guaranteed and the caller must not rely on
// peers' unfenced stores being visible). It costs a system call and an
// inter-processor interrupt per CPU that runs a registered process: a
// sleeper's price, paid once before it sleeps.
func Global() bool { return global() }
