package lock

// Arm is for waiting on the lock from outside it (waitset.Select): it
// marks a sleeper, so that the Release that frees the lock wakes the
// returned word; registers the caller with this process's liveness
// checker, which wakes this process's sleepers on the word if it finds
// the holder dead (within Options.CheckInterval); and returns the value to
// sleep on. The caller tries again (TryAcquire, which takes a dead
// holder's lock over with ErrOwnerDead) before it sleeps while *word ==
// val, and calls Disarm once after the sleep. On a free lock the value is
// one the word never holds, so the caller tries again instead of
// sleeping. Without a registry (Init and Attach with none) nobody is ever
// found dead.
func (l *Lock) Arm() (word *uint32, val uint32) { return l.m.Arm() }

// Disarm undoes one Arm's registration with the liveness checker; every
// Arm is followed by exactly one Disarm.
func (l *Lock) Disarm() { l.m.Disarm() }
