//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/statstest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
)

func init() { roles["pipe-stats-send"] = pipeRoleStatsSend }

// pipeRoleStatsSend (segment): opens end 1 of the pipe "p", waits until
// end 0 waits to receive, gives it time to fall asleep, sends one message
// and reports its counters.
func pipeRoleStatsSend(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	c, err := OpenPipe(seg, "p", 1, nil)
	if err != nil {
		return err
	}
	if err := statstest.Until("a waiting receiver", 30*time.Second, func() bool { return c.State().SendWaiting }); err != nil {
		return err
	}
	// The receiver raises its flag, looks once more, then sleeps.
	time.Sleep(100 * time.Millisecond)
	if err := c.Send(context.Background(), []byte("m")); err != nil {
		return err
	}
	statstest.Report(c.Stats())
	return nil
}

// TestPipeStatsAcrossProcesses: a Recv that another process's Send ends
// counts a wait and a spin that ended in sleep here, a wake there; a
// RecvTimeout that runs out counts a timeout.
func TestPipeStatsAcrossProcesses(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	p, err := CreatePipe(seg, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Before the peer comes (an unclaimed end counts as alive).
	buf := make([]byte, 16)
	if _, err := p.RecvTimeout(buf, 20*time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("RecvTimeout of an empty pipe: %v, want ErrEmpty", err)
	}
	statstest.Within(t, "timed-out receiver", p.Stats(),
		stats.Stats{Waits: 1, Timeouts: 1, SpinSleeps: 1}, stats.Stats{Waits: statstest.Any, Timeouts: 1, SpinSleeps: 1})

	c := proctest.Start(t, "pipe-stats-send", name)
	if n, err := p.Recv(context.Background(), buf); err != nil || string(buf[:n]) != "m" {
		t.Fatalf("Recv: %q, %v", buf[:n], err)
	}
	statstest.Within(t, "sender", statstest.Read(t, c), stats.Stats{Wakes: 1}, stats.Stats{Wakes: 1})
	c.WaitOK()
	got := p.Stats()
	statstest.Within(t, "receiver", got,
		stats.Stats{Waits: 2, Timeouts: 1, SpinSleeps: 2}, stats.Stats{Waits: statstest.Any, Timeouts: 1, SpinSleeps: 2})
	if st := p.State(); st.Wakes != got.Wakes {
		t.Errorf("State().Wakes = %d, Stats().Wakes = %d", st.Wakes, got.Wakes)
	}
	if o := stats.Snapshot()[seg.Path()]["p"]; o.Kind != "pipe" || o.Stats != got {
		t.Errorf("Snapshot: %+v, want kind pipe and %+v", o, got)
	}
}
