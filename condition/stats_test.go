//go:build linux

package condition_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// childStatsWait (segment): waits on the Condition "c" until notified,
// then reports its counters.
func childStatsWait(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	c, err := condition.Open(seg, "c", nil)
	if err != nil {
		return err
	}
	if err := c.Acquire(context.Background()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		return err
	}
	if err := c.Release(); err != nil {
		return err
	}
	statstest.Report(c.Stats())
	return nil
}

// TestStatsAcrossProcesses: a Wait that another process's Notify ends
// counts a wait and a spin that ended in sleep there, a wake here; a
// WaitTimeout that runs out counts a timeout.
func TestStatsAcrossProcesses(t *testing.T) {
	seg, name := newSegment(t)
	if _, err := lock.Create(seg, "l", nil); err != nil {
		t.Fatal(err)
	}
	c, err := condition.Create(seg, "c", "l", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := proctest.Start(t, "stats-wait", name)
	if err := statstest.Until("a waiter", time.Minute, func() bool { return c.State().Waiters == 1 }); err != nil {
		t.Fatal(err)
	}
	// The waiter registers, spins, then sleeps: let it get there.
	time.Sleep(100 * time.Millisecond)
	if err := c.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Notify(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "waiter", statstest.Read(t, ch),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})
	ch.WaitOK()
	statstest.Within(t, "notifier", c.Stats(), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})

	if err := c.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.WaitTimeout(20 * time.Millisecond); ok || err != nil {
		t.Fatalf("WaitTimeout with nobody to notify: %v, %v", ok, err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	got := c.Stats()
	statstest.Within(t, "timed-out waiter", got,
		stats.Stats{Waits: 1, Wakes: 1, Timeouts: 1, SpinSleeps: 1},
		stats.Stats{Waits: statstest.Any, Wakes: 1, Timeouts: 1, SpinSleeps: 1})
	if o := stats.Snapshot()[seg.Path()]["c"]; o.Kind != "condition" || o.Stats != got {
		t.Errorf("Snapshot: %+v, want kind condition and %+v", o, got)
	}
}
