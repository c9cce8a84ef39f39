package event

import "sync/atomic"

// Arm is for waiting on the event from outside it (waitset.Select): it
// marks a sleeper, so that the Set that raises the flag wakes the
// returned word, and returns the value to sleep on. The caller checks
// IsSet again before it sleeps while *word == val. There is nothing to
// undo: a stale mark costs one spurious wake.
func (e *Event) Arm() (word *uint32, val uint32) {
	for {
		old := atomic.LoadUint32(e.w)
		if old&(flagSet|waiters) != 0 {
			return e.w, old
		}
		if atomic.CompareAndSwapUint32(e.w, old, old|waiters) {
			return e.w, old | waiters
		}
	}
}
