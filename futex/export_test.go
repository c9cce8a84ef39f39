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
