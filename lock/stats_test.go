//go:build linux

package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

const statsCheck = 20 * time.Millisecond

func openStatsLock(segName string) (*shm.Segment, *lock.Lock, error) {
	seg, err := shm.Open(segName, nil)
	if err != nil {
		return nil, nil, err
	}
	l, err := lock.Open(seg, "mu", &lock.Options{CheckInterval: statsCheck})
	return seg, l, err
}

// roleStatsRelease (segment, then "kill" or "release"): acquires the Lock,
// says ready; with "release" it waits until the parent sleeps on the lock,
// releases it and reports its counters; with "kill" it holds until killed.
func roleStatsRelease(args []string) error {
	_, l, err := openStatsLock(args[0])
	if err != nil {
		return err
	}
	if err := l.Acquire(context.Background()); err != nil {
		return err
	}
	proctest.SignalReady()
	if args[1] == "kill" {
		time.Sleep(time.Hour)
	}
	if err := statstest.Until("a waiter", 30*time.Second, func() bool { return l.State().Waiters }); err != nil {
		return err
	}
	if err := l.Release(); err != nil {
		return err
	}
	statstest.Report(l.Stats())
	return nil
}

// TestStatsAcrossProcesses provokes every event a Lock counts with a
// second process and reads the counters back from both sides and from
// stats.Snapshot.
func TestStatsAcrossProcesses(t *testing.T) {
	seg, name := regtest.Segment(t)
	l, err := lock.Create(seg, "mu", &lock.Options{CheckInterval: statsCheck})
	if err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "fresh lock", l.Stats(), stats.Stats{}, stats.Stats{})

	// Waits, wakes, a spin that ended in sleep: the child holds, we sleep,
	// it releases.
	c := proctest.Start(t, "stats-release", name, "release")
	c.Expect(proctest.Ready, 0)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "releaser", statstest.Read(t, c),
		stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})
	c.WaitOK()
	statstest.Within(t, "waiter", l.Stats(),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})
	// A lock taken after a sleep is taken contended (another waiter may
	// sleep too), so this Release makes one wake.
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	before := l.Stats()

	// A timeout, then an owner-death takeover: the child holds until killed.
	c = proctest.Start(t, "stats-release", name, "kill")
	c.Expect(proctest.Ready, 0)
	if ok, err := l.AcquireTimeout(5 * statsCheck); ok || err != nil {
		t.Fatalf("AcquireTimeout of a held lock: %v, %v", ok, err)
	}
	c.Kill()
	c.Wait(0)
	if ok, err := l.AcquireTimeout(time.Minute); !ok || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("AcquireTimeout after the holder died: %v, %v; want ErrOwnerDead", ok, err)
	}
	got := l.Stats()
	statstest.Within(t, "timed-out waiter", got,
		stats.Stats{Waits: before.Waits + 2, Wakes: 1, Timeouts: 1, OwnerDeaths: 1, SpinSleeps: 3},
		stats.Stats{Waits: statstest.Any, Wakes: 1, Timeouts: 1, OwnerDeaths: 1, SpinSleeps: 3})

	// The registry shows the same, under the segment and object name.
	o, ok := stats.Snapshot()[seg.Path()]["mu"]
	if !ok || o.Kind != "lock" || o.Handles != 1 || o.Stats != l.Stats() {
		t.Errorf("Snapshot()[%q][mu] = %+v, %v; want kind lock, 1 handle, %+v", seg.Path(), o, ok, l.Stats())
	}
}
