package barrier

import (
	"sync/atomic"
	"time"
)

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
// Init (modulo 2^45), with two atomic loads. A round is counted before its
// waiters are woken, and from its release on even if the party that
// released it died before it counted it.
func (b *Barrier) Rounds() uint64 {
	r := atomic.LoadUint64(b.rounds)
	w := atomic.LoadUint32(b.w)
	n := r >> lastGenBits
	if w&draining != 0 && newer(gen(w), uint32(r)&lastGenMask) {
		n++ // released, not counted yet
	}
	return n
}

// CheckInterval is how often this handle's sleeping waiters look at the
// other parties; an observer that sleeps on Arm's word looks again as
// often (waitset.Tripped does), as a wake may be lost with a party killed
// in the middle of a release.
func (b *Barrier) CheckInterval() time.Duration { return b.check }
