//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

func init() { roles["pipe-sleepy-echo"] = pipeRoleSleepyEcho }

// pipeRoleSleepyEcho: PATH — pipeRoleEcho with liveness checks an hour
// apart, so that nothing but a wake ends its sleeps.
func pipeRoleSleepyEcho(args []string) error { return pipeEcho(args, time.Hour) }

// Request/response with a child where every wait ends in a sleep: each
// side waits for the other's message after its spin has run out (the child
// echoes at once; the parent answers after a pause), so each message
// crosses the publish-then-look of one side and the announce-then-look of
// the other. A lost wakeup would hang a Recv: the liveness check that
// would end it is an hour away, and the context ends the test instead.
// (On amd64 a publishing store without a full barrier after it, a plain
// MOV, made two runs in three hang.)
func TestPipeSleepersAcrossProcesses(t *testing.T) {
	opts := &PipeOptions{Capacity: 4096, MaxMsgSize: 1024, CheckInterval: time.Hour}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	c, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	child := proctest.Start(t, "pipe-sleepy-echo", path)
	rounds := 2000
	if testing.Short() {
		rounds = 600
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	max := c.MaxMsgSize()
	out, in := make([]byte, max), make([]byte, max)
	for i := uint64(0); i < uint64(rounds)*2; i += 2 {
		if i%4 == 0 {
			time.Sleep(50 * time.Microsecond) // past the child's spin: it sleeps
		}
		if err := c.Send(ctx, pipeMakeMsg(out, i, max)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		n, err := c.Recv(ctx, in)
		if err != nil {
			t.Fatalf("Recv %d: %v (a lost wakeup?)", i+1, err)
		}
		if j, err := pipeCheckMsg(in[:n], max); err != nil || j != i+1 {
			t.Fatalf("response %d (%v), want %d", j, err, i+1)
		}
	}
	if c.Stats().Waits == 0 {
		t.Error("the parent never slept: the test did not cross the sleep path")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	child.WaitOK()
}

// TestPipeWaitsSleepOnce: a Recv on an empty pipe and a Send into a full
// one, whose peer lives, each sleep once more after their first check
// interval, until their context ends, however short the interval: the
// process's liveness checker watches the peer for them.
func TestPipeWaitsSleepOnce(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	opts := &PipeOptions{Capacity: 256, CheckInterval: 2 * time.Millisecond}
	a, err := CreatePipe(seg, "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenPipe(seg, "p", 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := a.Recv(ctx, make([]byte, 16)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv on an empty pipe: %v, want context.DeadlineExceeded", err)
	}
	if st := a.Stats(); st.Waits > 2 {
		t.Errorf("a Recv blocked for 200 ms with a 2 ms check interval slept %d times, want at most 2", st.Waits)
	}
	for b.TrySend(make([]byte, 56)) == nil {
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Send(ctx, make([]byte, 56)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send into a full pipe: %v, want context.DeadlineExceeded", err)
	}
	if st := b.Stats(); st.Waits > 2 {
		t.Errorf("a Send blocked for 200 ms with a 2 ms check interval slept %d times, want at most 2", st.Waits)
	}
}
