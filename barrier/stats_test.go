//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

const statsCheck = 20 * time.Millisecond

// childStatsWait (segment, barrier): waits at the barrier, then reports
// its counters; killed before the others come, it is a party that died
// waiting.
func childStatsWait(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	b, err := barrier.Open(seg, args[1], &barrier.Options{CheckInterval: statsCheck})
	if err != nil {
		return err
	}
	if _, err := b.Wait(context.Background()); err != nil {
		return err
	}
	statstest.Report(b.Stats())
	return b.Close() // leave cleanly: a slot left behind would count as a dead party
}

// TestStatsAcrossProcesses: a party that sleeps until another process
// arrives counts a wait and a spin that ended in sleep, the party that
// releases the round a wake; a WaitTimeout that runs out counts a
// timeout; a registered party found dead counts an owner death.
func TestStatsAcrossProcesses(t *testing.T) {
	name, seg := newSegment(t)
	b, err := barrier.Create(seg, "b", 2, &barrier.Options{CheckInterval: statsCheck})
	if err != nil {
		t.Fatal(err)
	}
	sleeper := func() bool { st := b.State(); return st.Waiting == 1 && st.Waiters }

	c := proctest.Start(t, "stats-wait", name, "b")
	if err := statstest.Until("a sleeping party", time.Minute, sleeper); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "sleeping party", statstest.Read(t, c),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})
	c.WaitOK()
	statstest.Within(t, "releasing party", b.Stats(), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})

	if _, err := b.WaitTimeout(5 * statsCheck); !errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("WaitTimeout alone: %v, want ErrTimedOut", err)
	}
	b.Reset()
	statstest.Within(t, "timed-out party", b.Stats(),
		stats.Stats{Waits: 1, Wakes: 1, Timeouts: 1, SpinSleeps: 1},
		stats.Stats{Waits: statstest.Any, Wakes: 2, Timeouts: 1, SpinSleeps: 1})

	if o := stats.Snapshot()[seg.Path()]["b"]; o.Kind != "barrier" || o.Stats != b.Stats() {
		t.Errorf("Snapshot: %+v, want kind barrier and %+v", o, b.Stats())
	}

	// Three parties: one arrives and dies, we arrive and sleep; our wait
	// finds the registered party dead at a check, frees its slot and
	// breaks the round.
	b3, err := barrier.Create(seg, "b3", 3, &barrier.Options{CheckInterval: statsCheck})
	if err != nil {
		t.Fatal(err)
	}
	c = proctest.Start(t, "stats-wait", name, "b3")
	if err := statstest.Until("a sleeping party", time.Minute, func() bool { st := b3.State(); return st.Waiting == 1 && st.Waiters }); err != nil {
		t.Fatal(err)
	}
	c.Kill()
	c.Wait(0)
	if _, err := b3.WaitTimeout(time.Minute); !errors.Is(err, barrier.ErrBrokenBarrier) || errors.Is(err, barrier.ErrTimedOut) {
		t.Fatalf("Wait with a dead party: %v, want ErrBrokenBarrier", err)
	}
	statstest.Within(t, "party that outlived another", b3.Stats(),
		stats.Stats{Waits: 1, OwnerDeaths: 1, SpinSleeps: 1},
		stats.Stats{Waits: statstest.Any, Wakes: 1, OwnerDeaths: 1, SpinSleeps: 1})
}
