package futex

import (
	"time"

	"golang.org/x/sys/unix"
)

// absDeadline converts a deadline into an absolute CLOCK_MONOTONIC timespec
// for FUTEX_WAIT_BITSET, or nil when the deadline is beyond reach. The
// remaining time is taken from a clock read made before the kernel clock's
// read, so the kernel deadline can only fall late, never early; Wait still
// re-checks the clock before it reports a timeout.
func absDeadline(deadline time.Time) (*unix.Timespec, error) {
	rem := time.Until(deadline)
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return nil, err
	}
	rem = max(rem, 0)
	base := now.Nano()
	if rem >= MaxTimeout || base > int64(1<<62) {
		return nil, nil
	}
	ts := unix.NsecToTimespec(base + int64(rem))
	return &ts, nil
}
