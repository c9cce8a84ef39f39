//go:build linux

package futex

// SetHub switches the wait path for a test and returns the restore
// function; nothing may wait while it switches. With on, every wait goes
// through the hub (no direct sleepers). It reports false when the
// hub is asked for and the kernel lacks futex_waitv.
func SetHub(on bool) (restore func(), ok bool) {
	old := useHub.Load()
	if on && !haveWaitv() {
		return func() {}, false
	}
	oldMax := maxDirect.Load()
	useHub.Store(on)
	maxDirect.Store(0) // through the hub alone, to test it
	return func() { useHub.Store(old); maxDirect.Store(oldMax) }, true
}

// SetMaxDirect sets how many waits may sleep in the kernel themselves
// before the hub takes the rest, and returns the restore function.
func SetMaxDirect(n int32) (restore func()) {
	old := maxDirect.Load()
	maxDirect.Store(n)
	return func() { maxDirect.Store(old) }
}

// SetRecheckHook makes the hub thread call f between its look at a
// registration's goroutines and its read of the word; nothing may wait
// while it is set.
func SetRecheckHook(f func()) (restore func()) {
	old := recheckHook.Swap(&f)
	return func() { recheckHook.Store(old) }
}

// Borrowers reports how many hub waiters are run by a waiting goroutine
// (borrowed) rather than by their own goroutine.
func Borrowers() int {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	n := 0
	for _, w := range hub.waiters {
		w.mu.Lock()
		if w.borrowed {
			n++
		}
		w.mu.Unlock()
	}
	return n
}

// HubIdle reports whether every hub waiter is parked without a
// registration.
func HubIdle() bool {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, w := range hub.waiters {
		w.mu.Lock()
		idle := len(w.regs) == 0 && w.parked && !w.borrowed
		w.mu.Unlock()
		if !idle {
			return false
		}
	}
	return true
}

// SpinLimit is the adaptive spin budget's active limit, in iterations, for
// a spin that starts now.
func SpinLimit() int32 { return int32(limit()) }

// SpinFloor puts the adaptive spin budget at its floor, as a run of
// spins that all ran out leaves it.
func SpinFloor() { fails.Store(offAfter + 1) }
