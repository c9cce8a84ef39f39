//go:build linux

package event_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

// childStatsSet (segment): waits until the parent sleeps on the Event
// "e", sets it and reports its counters.
func childStatsSet(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	e, err := event.Open(seg, "e", nil)
	if err != nil {
		return err
	}
	if err := statstest.Until("a waiter", 30*time.Second, func() bool { return e.State().Waiters }); err != nil {
		return err
	}
	e.Set()
	statstest.Report(e.Stats())
	return nil
}

// TestStatsAcrossProcesses: a Wait that another process's Set ends counts
// a wait and a spin that ended in sleep here, a wake there; a WaitTimeout
// that runs out counts a timeout.
func TestStatsAcrossProcesses(t *testing.T) {
	name, seg := newSegment(t)
	e, err := event.Create(seg, "e", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "stats-set", name)
	if err := e.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "setter", statstest.Read(t, c), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})
	c.WaitOK()
	statstest.Within(t, "waiter", e.Stats(),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})

	e.Clear()
	if e.WaitTimeout(20 * time.Millisecond) {
		t.Fatal("WaitTimeout of a clear Event returned true")
	}
	statstest.Within(t, "timed-out waiter", e.Stats(),
		stats.Stats{Waits: 2, Timeouts: 1, SpinSleeps: 2}, stats.Stats{Waits: statstest.Any, Timeouts: 1, SpinSleeps: 2})

	// The waiter that gave up left the waiters bit set: the next Set pays
	// one wake. After that, Set with nobody waiting, and Wait on a set
	// Event, count nothing.
	e.Set()
	if got := e.Stats().Wakes; got != 1 {
		t.Errorf("Set after a timed-out waiter: Wakes = %d, want 1", got)
	}
	e.Clear()
	before := e.Stats()
	e.Set()
	e.Wait(context.Background())
	if got := e.Stats(); got != before {
		t.Errorf("uncontended Set and Wait moved the counters: %+v, was %+v", got, before)
	}
	if o := stats.Snapshot()[seg.Path()]["e"]; o.Kind != "event" || o.Stats != e.Stats() {
		t.Errorf("Snapshot: %+v, want kind event and %+v", o, e.Stats())
	}
}
