package lock

// Arm is for waiting on the lock from outside it (waitset.Select): it
// marks a sleeper, so that the Release that frees the lock wakes the
// returned word, and returns the value to sleep on. The caller tries
// again (TryAcquire) before it sleeps while *word == val, and learns of a
// holder's death through Watch. On a free lock the value is one the word
// never holds, so the caller tries again instead of sleeping. There is
// nothing to undo: a stale mark costs one spurious wake.
func (l *Lock) Arm() (word *uint32, val uint32) { return l.m.Arm() }

// Watch is for waiting on the lock from outside it: it asks this
// process's liveness checker to call notify once, from its own goroutine,
// if it finds the holder dead (it looks every Options.CheckInterval), so
// that the waiter wakes and takes the lock over with TryAcquire
// (ErrOwnerDead). Call cancel when no longer waiting; calling it after
// notify is harmless. Without a registry (Init and Attach with none)
// nobody is ever found dead and notify is never called.
func (l *Lock) Watch(notify func()) (cancel func()) { return l.m.Watch(notify) }
