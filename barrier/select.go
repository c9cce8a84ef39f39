package barrier

import "sync/atomic"

// Arm is for watching the barrier from outside it (waitset.Select): it
// marks a sleeper, so that the next change of the barrier's state (an
// arrival, a release, a break, a reset) wakes the returned word, and
// returns the value to sleep on. The caller looks again (Rounds, Broken)
// before it sleeps while *word == val. Arm does not take part in a
// round. There is nothing to undo: a stale mark costs one spurious wake.
func (b *Barrier) Arm() (word *uint32, val uint32) {
	for {
		old := atomic.LoadUint32(b.w)
		if old&waiters != 0 {
			return b.w, old
		}
		if atomic.CompareAndSwapUint32(b.w, old, old|waiters) {
			return b.w, old | waiters
		}
	}
}

// Rounds returns the number of rounds the barrier has released since
// Init (modulo 2^64), with one atomic load. A round is counted before its
// waiters are woken.
func (b *Barrier) Rounds() uint64 { return atomic.LoadUint64(b.rounds) }
