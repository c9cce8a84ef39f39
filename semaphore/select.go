package semaphore

import "sync/atomic"

// Arm is for waiting on the semaphore from outside it (waitset.Select):
// it marks a sleeper, so that the Release that makes a unit available
// wakes the returned word, and returns the value to sleep on. The caller
// checks again (TryAcquire or Value) before it sleeps while *word == val.
// There is nothing to undo: a stale mark costs one spurious wake.
func (s *Semaphore) Arm() (word *uint32, val uint32) { return s.s.arm() }

// Arm is [Semaphore.Arm] for a BoundedSemaphore.
func (s *BoundedSemaphore) Arm() (word *uint32, val uint32) { return s.s.arm() }

func (s *sem) arm() (*uint32, uint32) {
	for {
		old := atomic.LoadUint32(s.w)
		if old>>valueShift > 0 || old&waiters != 0 {
			return s.w, old
		}
		if atomic.CompareAndSwapUint32(s.w, old, old|waiters) {
			return s.w, old | waiters
		}
	}
}
