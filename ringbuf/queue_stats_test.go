//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

func init() {
	roles["q-stats-put"] = qRoleStatsPut
	roles["q-stats-reserve"] = qRoleStatsReserve
}

// qSegQueue creates a segment with a queue "q" (4 slots of 16 bytes,
// check interval check) for a test, and returns both and the segment's
// name.
func qSegQueue(t *testing.T, check time.Duration) (*shm.Segment, *Queue, string) {
	t.Helper()
	seg, name := regtest.Segment(t)
	q, err := Create(seg, "q", 4, 16, &Options{CheckInterval: check})
	if err != nil {
		t.Fatal(err)
	}
	return seg, q, name
}

const qStatsCheck = 20 * time.Millisecond

func qStatsOpen(segName string) (*Queue, error) {
	seg, err := shm.Open(segName, nil)
	if err != nil {
		return nil, err
	}
	return Open(seg, "q", &Options{CheckInterval: qStatsCheck})
}

// qRoleStatsPut (segment): waits until a getter registers as a sleeper on
// the queue "q", gives it time to fall asleep, puts one message and
// reports its counters.
func qRoleStatsPut(args []string) error {
	q, err := qStatsOpen(args[0])
	if err != nil {
		return err
	}
	if err := statstest.Until("a sleeping getter", 30*time.Second, func() bool { return q.State().GetWaiters > 0 }); err != nil {
		return err
	}
	// The getter registers, tries once more, then sleeps: let it get there.
	time.Sleep(100 * time.Millisecond)
	if err := q.Put(context.Background(), []byte("m")); err != nil {
		return err
	}
	statstest.Report(q.Stats())
	return nil
}

// qRoleStatsReserve (segment): claims a slot with Reserve, says ready and
// stays until killed, so that the slot's claimant dies mid-message.
func qRoleStatsReserve(args []string) error {
	q, err := qStatsOpen(args[0])
	if err != nil {
		return err
	}
	if _, err := q.Reserve(context.Background(), 1); err != nil {
		return err
	}
	proctest.SignalReady()
	time.Sleep(time.Hour)
	return nil
}

// TestQueueStatsAcrossProcesses provokes every event a Queue counts with a
// second process: a Get that another process's Put ends (a wait and a spin
// that ended in sleep here, a wake there), a GetTimeout that runs out, and
// a slot reclaimed from a producer killed mid-message.
func TestQueueStatsAcrossProcesses(t *testing.T) {
	seg, q, name := qSegQueue(t, qStatsCheck)

	c := proctest.Start(t, "q-stats-put", name)
	if m, err := q.Get(context.Background()); err != nil || string(m) != "m" {
		t.Fatalf("Get: %q, %v", m, err)
	}
	statstest.Within(t, "putter", statstest.Read(t, c), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})
	c.WaitOK()
	statstest.Within(t, "getter", q.Stats(),
		stats.Stats{Waits: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, SpinSleeps: 1})

	if _, err := q.GetTimeout(20 * time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetTimeout of an empty queue: %v, want ErrEmpty", err)
	}
	statstest.Within(t, "timed-out getter", q.Stats(),
		stats.Stats{Waits: 2, Timeouts: 1, SpinSleeps: 2}, stats.Stats{Waits: statstest.Any, Timeouts: 1, SpinSleeps: 2})

	c = proctest.Start(t, "q-stats-reserve", name)
	c.Expect(proctest.Ready, 0)
	c.Kill()
	c.Wait(0)
	if _, err := q.GetTimeout(20 * qStatsCheck); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetTimeout behind a dead producer's slot: %v, want ErrEmpty", err)
	}
	got := q.Stats()
	statstest.Within(t, "getter behind a dead producer", got,
		stats.Stats{Waits: 3, Timeouts: 2, OwnerDeaths: 1, SpinSleeps: 3},
		stats.Stats{Waits: statstest.Any, Wakes: statstest.Any, Timeouts: 2, OwnerDeaths: 1, SpinSleeps: 3})

	if o := stats.Snapshot()[seg.Path()]["q"]; o.Kind != "queue" || o.Stats != got {
		t.Errorf("Snapshot: %+v, want kind queue and %+v", o, got)
	}
}

// TestGetOnEmptySleepsOnce: a Get blocked on an empty queue sleeps once
// more after its first check interval, until something happens, however
// short the interval: only a getter blocked behind a claimed slot looks
// again every interval.
func TestGetOnEmptySleepsOnce(t *testing.T) {
	_, q, _ := qSegQueue(t, 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := q.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of an empty queue: %v, want context.DeadlineExceeded", err)
	}
	if st := q.Stats(); st.Waits > 2 {
		t.Errorf("a Get blocked for 200 ms with a 2 ms check interval slept %d times, want at most 2", st.Waits)
	}
}

// TestGetAfterProducerKilledBeforeWake: a producer killed between its
// commit and its wake (forged here: the commit without the wake) leaves
// a message behind a getter asleep on the empty queue without a check
// deadline; the process's liveness checker wakes it within about one
// check interval.
func TestGetAfterProducerKilledBeforeWake(t *testing.T) {
	_, q, _ := qSegQueue(t, qStatsCheck)
	got := make(chan error, 1)
	go func() {
		m, err := q.GetTimeout(30 * time.Second)
		if err == nil && string(m) != "m" {
			err = fmt.Errorf("got %q, want \"m\"", m)
		}
		got <- err
	}()
	if err := statstest.Until("a sleeping getter", 10*time.Second, func() bool { return q.State().GetWaiters > 0 }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * qStatsCheck) // past its first interval: it sleeps with no check deadline
	s, pos, err := q.putClaim(context.Background(), 1, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	copy(q.payload(s, 1), "m")
	// commitPut's publication, without its wake.
	if !atomic.CompareAndSwapUint64(qSlotWord(s), qWord(uint32(pos), q.selfClaim), qWord(uint32(pos)+1, qClaimFull|1)) {
		t.Fatal("commit failed")
	}
	start := time.Now()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the getter took the message %v after its commit", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a getter still sleeps 10 s after a commit that came without its wake")
	}
}
