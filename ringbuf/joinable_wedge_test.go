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
)

const jwCheck = 10 * time.Millisecond

func init() {
	roles["jq-reserve-hold"] = jqRoleReserveHold
	roles["jq-get-hold"] = jqRoleGetHold
}

// jwQueue makes a JoinableQueue(8, 16) in a shared file with a registry.
func jwQueue(t *testing.T) (*JoinableQueue, []byte, string) {
	t.Helper()
	size := SizeOfJoinable(8, 16)
	mem, path := qTestMap(t, size)
	j, err := InitJoinable(mem[:size], 8, 16, &Options{CheckInterval: jwCheck, Registry: regtest.Registry(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	return j, mem, path
}

func jwChild(path string) (*JoinableQueue, error) {
	mem, err := qChildMap(path)
	if err != nil {
		return nil, err
	}
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, err
	}
	return AttachJoinable(mem[:SizeOfJoinable(8, 16)], &Options{CheckInterval: jwCheck, Registry: reg})
}

// jq-reserve-hold PATH: claims a slot for a message, says ready, and
// stays there until killed (a producer killed before its commit).
func jqRoleReserveHold(args []string) error {
	j, err := jwChild(args[0])
	if err != nil {
		return err
	}
	r, err := j.Reserve(context.Background(), 4)
	if err != nil {
		return err
	}
	copy(r.Bytes(), "task")
	proctest.SignalReady()
	time.Sleep(time.Minute)
	return nil
}

// jq-get-hold PATH N: takes N messages (Get), says ready, and stays there
// without calling TaskDone until killed.
func jqRoleGetHold(args []string) error {
	j, err := jwChild(args[0])
	if err != nil {
		return err
	}
	for i := 0; i < atoi(args[1]); i++ {
		if _, err := j.Get(context.Background()); err != nil {
			return err
		}
	}
	proctest.SignalReady()
	time.Sleep(time.Minute)
	return nil
}

// jwUse checks that j works normally afterwards: 20 tasks through it,
// Join returns, and one TaskDone too many is ErrTaskDone.
func jwUse(t *testing.T, j *JoinableQueue) {
	t.Helper()
	for i := 0; i < 20; i++ {
		if err := j.Put(context.Background(), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if ok, _ := j.TryJoin(); ok {
			t.Fatalf("TryJoin true with task %d in the queue", i)
		}
		m, err := j.Get(context.Background())
		if err != nil || string(m) != fmt.Sprint(i) {
			t.Fatalf("Get = %q, %v", m, err)
		}
		if err := j.TaskDone(); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := j.JoinTimeout(5 * time.Second); !ok || err != nil {
		t.Fatalf("Join after normal use = %v, %v; %+v", ok, err, j.State())
	}
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("extra TaskDone = %v, want ErrTaskDone", err)
	}
}

// TestJoinProducerKilledInCommit: a producer killed between claiming its
// slot and committing its message. The layout before taker entries
// counted the task in the header (offset 320) just before the commit, so a
// kill in between left a phantom task: the slot was reclaimed as "skip",
// Unfinished stayed 1 and Join never returned. The test leaves exactly
// that memory behind (the claim, by a real killed process, and that old
// count); now nothing counts puts, the word at 320 is the join epoch, and
// Join must return.
func TestJoinProducerKilledInCommit(t *testing.T) {
	j, mem, path := jwQueue(t)
	c := proctest.Start(t, "jq-reserve-hold", path)
	c.Expect(proctest.Ready, 0)
	c.Kill()
	<-c.Done()
	atomic.AddUint64(u64at(mem, 320), 1) // the old layout's count of the task
	if ok, err := j.JoinTimeout(5 * time.Second); !ok || err != nil {
		t.Fatalf("Join after a producer died in its commit = %v, %v; %+v", ok, err, j.State())
	}
	if n := j.Unfinished(); n != 0 {
		t.Fatalf("Unfinished = %d", n)
	}
	// Consumers pass the dead claim (reclaimed as skip) and the queue works.
	if err := j.Put(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m, err := j.GetTimeout(5 * time.Second); err != nil || string(m) != "x" {
		t.Fatalf("Get past the dead claim = %q, %v", m, err)
	}
	if err := j.TaskDone(); err != nil {
		t.Fatal(err)
	}
	jwUse(t, j)
}

// TestJoinConsumerKilledBeforeTaskDone: consumers killed between Get and
// TaskDone. Python's JoinableQueue (and this one before taker entries)
// waits for their tasks for ever; here a dead taker's tasks count as
// done, and Join returns within a few check intervals.
func TestJoinConsumerKilledBeforeTaskDone(t *testing.T) {
	j, _, path := jwQueue(t)
	for i := 0; i < 5; i++ {
		if err := j.Put(context.Background(), []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	a := proctest.Start(t, "jq-get-hold", path, "2")
	a.Expect(proctest.Ready, 0)
	b := proctest.Start(t, "jq-get-hold", path, "3")
	b.Expect(proctest.Ready, 0)
	if st := j.State(); st.Unfinished != 5 || st.Taken != 5 || st.Len != 0 {
		t.Fatalf("with 5 tasks taken: %+v", st)
	}
	if ok, _ := j.JoinTimeout(3 * jwCheck); ok {
		t.Fatal("Join returned while the takers live")
	}
	a.Kill()
	<-a.Done()
	if ok, _ := j.JoinTimeout(3 * jwCheck); ok {
		t.Fatal("Join returned while one taker lives")
	}
	if n := j.Unfinished(); n != 3 {
		t.Fatalf("Unfinished = %d after the taker of 2 died, want 3", n)
	}
	done := make(chan error, 1)
	go func() { done <- j.Join(context.Background()) }()
	time.Sleep(2 * jwCheck)
	b.Kill()
	<-b.Done()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Join did not return after every taker died; %+v", j.State())
	}
	jwUse(t, j)
}

// TestTaskDoneHandedOver: a task taken by one process and done by another
// lowers the taker's count; TaskDone with nothing taken is ErrTaskDone.
func TestTaskDoneHandedOver(t *testing.T) {
	j, _, path := jwQueue(t)
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("TaskDone on a fresh queue = %v", err)
	}
	j.Put(context.Background(), []byte("a"))
	c := proctest.Start(t, "jq-get-hold", path, "1")
	c.Expect(proctest.Ready, 0)
	if err := j.TaskDone(); err != nil {
		t.Fatalf("TaskDone for the child's task = %v", err)
	}
	if ok, err := j.TryJoin(); !ok || err != nil {
		t.Fatalf("TryJoin = %v, %v; %+v", ok, err, j.State())
	}
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("second TaskDone = %v", err)
	}
	c.Kill()
	<-c.Done()
}

// TestJoinLooseTakes: a handle that found every taker entry held by a
// live process counts its takes loose; they count in Unfinished, and
// TaskDone takes them back.
func TestJoinLooseTakes(t *testing.T) {
	j, _, _ := jwQueue(t)
	j.joinIdx.Store(-2) // this handle found no entry free
	j.Put(context.Background(), []byte("a"))
	if _, err := j.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := atomic.LoadUint32(j.joinLoose); v != 1 {
		t.Fatalf("loose count %d after one loose take", v)
	}
	if st := j.State(); st.Taken != 1 || st.Unfinished != 1 {
		t.Fatalf("after a loose take: %+v", st)
	}
	if ok, _ := j.TryJoin(); ok {
		t.Fatal("TryJoin true with a loose task not done")
	}
	if err := j.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := j.TryJoin(); !ok {
		t.Fatalf("TryJoin after the loose task was done: %+v", j.State())
	}
}
