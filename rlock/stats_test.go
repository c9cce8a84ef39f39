//go:build linux

package rlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

const statsCheck = 20 * time.Millisecond

// childStatsHold (segment): takes the RLock "r", says ready and holds it
// until killed.
func childStatsHold(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	r, err := rlock.Open(seg, "r", &rlock.Options{CheckInterval: statsCheck})
	if err != nil {
		return err
	}
	if err := r.Acquire(context.Background()); err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Hour)
	return nil
}

// TestStatsAcrossProcesses: an AcquireTimeout that runs out while another
// process holds the RLock counts a timeout; the holder's death, a
// takeover.
func TestStatsAcrossProcesses(t *testing.T) {
	seg, name := regtest.Segment(t)
	r, err := rlock.Create(seg, "r", &rlock.Options{CheckInterval: statsCheck})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "stats-hold", name)
	c.Expect(proctest.Ready, 0)
	if ok, err := r.AcquireTimeout(5 * statsCheck); ok || err != nil {
		t.Fatalf("AcquireTimeout of a held RLock: %v, %v", ok, err)
	}
	c.Kill()
	c.Wait(0)
	if ok, err := r.AcquireTimeout(time.Minute); !ok || !errors.Is(err, rlock.ErrOwnerDead) {
		t.Fatalf("AcquireTimeout after the owner died: %v, %v; want ErrOwnerDead", ok, err)
	}
	got := r.Stats()
	statstest.Within(t, "waiter", got,
		stats.Stats{Waits: 2, Timeouts: 1, OwnerDeaths: 1, SpinSleeps: 2},
		stats.Stats{Waits: statstest.Any, Timeouts: 1, OwnerDeaths: 1, SpinSleeps: 2})
	if o := stats.Snapshot()[seg.Path()]["r"]; o.Kind != "rlock" || o.Stats != got {
		t.Errorf("Snapshot: %+v, want kind rlock and %+v", o, got)
	}
}
