//go:build linux

package ringbuf

import (
	"context"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

func init() { roles["join-stats-worker"] = joinRoleStatsWorker }

// joinRoleStatsWorker (segment): takes the task from the joinable queue
// "j", waits until a Join sleeps, marks the task done and reports its
// counters.
func joinRoleStatsWorker(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	j, err := OpenJoinable(seg, "j", nil)
	if err != nil {
		return err
	}
	if _, err := j.Get(context.Background()); err != nil {
		return err
	}
	if err := statstest.Until("a sleeping Join", 30*time.Second, func() bool { return j.State().JoinWaiters > 0 }); err != nil {
		return err
	}
	if err := j.TaskDone(); err != nil {
		return err
	}
	statstest.Report(j.Stats())
	return nil
}

// TestJoinStatsAcrossProcesses: a JoinTimeout that runs out counts a
// timeout; a Join that another process's TaskDone ends counts a wait here
// and a wake there.
func TestJoinStatsAcrossProcesses(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	j, err := CreateJoinable(seg, "j", 4, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(context.Background(), []byte("task")); err != nil {
		t.Fatal(err)
	}
	if ok, err := j.JoinTimeout(20 * time.Millisecond); ok || err != nil {
		t.Fatalf("JoinTimeout with a task outstanding: %v, %v", ok, err)
	}
	statstest.Within(t, "timed-out joiner", j.Stats(),
		stats.Stats{Waits: 1, Timeouts: 1}, stats.Stats{Waits: statstest.Any, Timeouts: 1})

	c := proctest.Start(t, "join-stats-worker", name)
	if err := j.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	statstest.Within(t, "worker", statstest.Read(t, c), stats.Stats{Wakes: 1}, stats.Stats{Wakes: statstest.Any})
	c.WaitOK()
	statstest.Within(t, "joiner", j.Stats(),
		stats.Stats{Waits: 2, Timeouts: 1}, stats.Stats{Waits: statstest.Any, Wakes: statstest.Any, Timeouts: 1})
}
