package futex

// SetHub switches the wait path for a test and returns the restore
// function; nothing may wait while it switches. It reports false when the
// hub is asked for and the kernel lacks futex_waitv.
func SetHub(on bool) (restore func(), ok bool) {
	old := useHub.Load()
	if on && !haveWaitv() {
		return func() {}, false
	}
	useHub.Store(on)
	return func() { useHub.Store(old) }, true
}
