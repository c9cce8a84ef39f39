//go:build linux

package semaphore_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// childStatsRelease (segment): waits until the parent sleeps on the
// semaphore "s", releases one unit and reports its counters.
func childStatsRelease(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	s, err := semaphore.Open(seg, "s", nil)
	if err != nil {
		return err
	}
	if err := statstest.Until("a waiter", 30*time.Second, func() bool { return s.State().Waiters }); err != nil {
		return err
	}
	if err := s.Release(1); err != nil {
		return err
	}
	statstest.Report(s.Stats())
	return nil
}

// TestStatsAcrossProcesses: a sleep that another process's Release ends
// counts a wait and a spin that ended in sleep here, a wake there; an
// AcquireTimeout that runs out counts a timeout.
func TestStatsAcrossProcesses(t *testing.T) {
	name, seg := newSegment(t)
	s, err := semaphore.Create(seg, "s", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "stats-release", name)
	if err := s.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "releaser", statstest.Read(t, c), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})
	c.WaitOK()
	statstest.Within(t, "acquirer", s.Stats(),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})

	if ok, _ := s.AcquireTimeout(20 * time.Millisecond); ok {
		t.Fatal("AcquireTimeout of an empty semaphore took a unit")
	}
	statstest.Within(t, "timed-out acquirer", s.Stats(),
		stats.Stats{Waits: 2, Timeouts: 1, SpinSleeps: 2}, stats.Stats{Waits: statstest.Any, Timeouts: 1, SpinSleeps: 2})

	// The waiter that gave up left the waiters bit set: the next Release
	// pays one wake. After that, uncontended operations count nothing.
	s.Release(1)
	s.Acquire(context.Background())
	if got := s.Stats().Wakes; got != 1 {
		t.Errorf("Release after a timed-out waiter: Wakes = %d, want 1", got)
	}
	before := s.Stats()
	s.Release(1)
	s.Acquire(context.Background())
	if got := s.Stats(); got != before {
		t.Errorf("uncontended Release and Acquire moved the counters: %+v, was %+v", got, before)
	}
	o := stats.Snapshot()[seg.Path()]["s"]
	if o.Kind != "semaphore" || o.Stats != s.Stats() {
		t.Errorf("Snapshot: %+v, want kind semaphore and %+v", o, s.Stats())
	}
}
