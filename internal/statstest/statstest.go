//go:build linux

// Package statstest holds what the objects' counter tests share: a child
// process reports its handle's counters as one line of stdout, the parent
// reads them back, and both check them against bounds.
package statstest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/stats"
)

const prefix = "stats "

// Report prints s on stdout as the line Read looks for (child side).
func Report(s stats.Stats) {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s%s\n", prefix, b)
}

// Read returns the counters the child c reported with Report, skipping
// other lines; it fails the test if c ends or stalls first.
func Read(tb testing.TB, c *proctest.Child) stats.Stats {
	tb.Helper()
	for {
		l := c.Line(0)
		if l == "" {
			tb.Fatalf("statstest: child ended without reporting its counters")
		}
		if s, ok := strings.CutPrefix(l, prefix); ok {
			var st stats.Stats
			if err := json.Unmarshal([]byte(s), &st); err != nil {
				tb.Fatalf("statstest: child's counters %q: %v", s, err)
			}
			return st
		}
	}
}

// Until polls cond every 50 µs until it holds or d passes; it returns an
// error naming what in the second case (for children, which have no
// testing.TB).
func Until(what string, d time.Duration, cond func() bool) error {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("statstest: %s did not happen within %v", what, d)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}

// Any is an upper bound for a counter whose exact value the test does not
// control (sleeps after spurious wakeups, say) yet must stay sane.
const Any = 1000

// Within fails the test unless every counter of got lies between the
// same counter of lo and hi.
func Within(tb testing.TB, who string, got, lo, hi stats.Stats) {
	tb.Helper()
	for _, f := range []struct {
		name      string
		g, lo, hi uint64
	}{
		{"Waits", got.Waits, lo.Waits, hi.Waits},
		{"Wakes", got.Wakes, lo.Wakes, hi.Wakes},
		{"Timeouts", got.Timeouts, lo.Timeouts, hi.Timeouts},
		{"OwnerDeaths", got.OwnerDeaths, lo.OwnerDeaths, hi.OwnerDeaths},
		{"SpinSleeps", got.SpinSleeps, lo.SpinSleeps, hi.SpinSleeps},
	} {
		if f.g < f.lo || f.g > f.hi {
			tb.Errorf("%s: %s = %d, want %d..%d (all: %+v)", who, f.name, f.g, f.lo, f.hi, got)
		}
	}
}
