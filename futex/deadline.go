package futex

import (
	"time"

	"golang.org/x/sys/unix"
)

// MaxTimeout is the longest timeout that expires: a wait of MaxTimeout or
// more (about 73 years) is a wait without a deadline, as Python treats a
// timeout too large to represent. It keeps every deadline computation far
// from overflowing, both in time.Time and in the kernel's timespec.
const MaxTimeout = time.Duration(1 << 61)

// After returns the deadline for a timeout d that starts now, for [Wait]
// and for every timed call of the module: one clock read, and saturating
// arithmetic, so that a d of MaxTimeout or more gives a deadline that
// never passes (Wait treats it as none) instead of overflowing. The result
// is never the zero Time, so callers may compare it with other deadlines.
func After(d time.Duration) time.Time {
	if d >= MaxTimeout {
		d = 2 * MaxTimeout
	}
	return time.Now().Add(d)
}

// forever reports whether a deadline, seen from now, is beyond MaxTimeout:
// Wait sleeps without a kernel or timer deadline then. A deadline made by
// time.Time.Add with an overflowing duration has lost its monotonic
// reading; Sub then compares wall clocks and saturates, which is right here.
func forever(deadline, now time.Time) bool { return deadline.Sub(now) >= MaxTimeout }

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
