package futex

import (
	"errors"
	"time"
)

// ErrTimeout is returned by [Wait] when its deadline passes before a wakeup.
var ErrTimeout = errors.New("futex: timed out")

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
