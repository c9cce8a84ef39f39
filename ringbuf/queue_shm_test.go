//go:build linux

package ringbuf

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	roles["q-seg-peer"] = qRoleSegPeer
}

// qSegRec and qSegOther have the same size and alignment but different
// fields: the fingerprint must tell them apart.
type qSegRec struct {
	Seq int32
	Sum uint32
	Len int64
}

type qSegOther struct {
	A, B int32
	C    float64
}

// qSegCheckOpens asserts the error of every way to open the segment's
// queues with the wrong kind, type or name (the same checks from the
// creating process and from another one).
func qSegCheckOpens(seg *shm.Segment) error {
	checks := []struct {
		what string
		err  error
		want error
	}{}
	add := func(what string, err, want error) {
		checks = append(checks, struct {
			what string
			err  error
			want error
		}{what, err, want})
	}
	_, err := Open(seg, "missing", nil)
	add("Open of a missing name", err, shm.ErrNotExist)
	_, err = OpenJoinable(seg, "jobs", nil)
	add("OpenJoinable of a Queue", err, shm.ErrKindMismatch)
	_, err = Open(seg, "tasks", nil)
	add("Open of a JoinableQueue", err, shm.ErrKindMismatch)
	_, err = OpenTyped[qSegOther](seg, "recs", nil)
	add("OpenTyped with another type of the same size", err, shm.ErrTypeMismatch)
	_, err = OpenTyped[int64](seg, "recs", nil)
	add("OpenTyped with another size", err, shm.ErrTypeMismatch)
	_, err = OpenTyped[qSegRec](seg, "jobs", nil)
	add("OpenTyped of an untyped Queue", err, shm.ErrTypeMismatch)
	_, err = OpenTyped[qSegRec](seg, "raw", nil)
	add("OpenTyped of a non-queue", err, shm.ErrKindMismatch)
	_, err = Open(seg, "raw", nil)
	add("Open of a non-queue", err, shm.ErrKindMismatch)
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			return fmt.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	return nil
}

// q-seg-peer SEGMENT: opens the segment and its queues by name, checks
// the mismatch errors, gets the messages of "jobs" and answers each with a
// record on "recs", then takes every task of "tasks" and marks it done.
func qRoleSegPeer(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	if err := qSegCheckOpens(seg); err != nil {
		return err
	}
	jobs, err := Open(seg, "jobs", nil)
	if err != nil {
		return err
	}
	recs, err := OpenTyped[qSegRec](seg, "recs", nil)
	if err != nil {
		return err
	}
	tasks, err := OpenJoinable(seg, "tasks", nil)
	if err != nil {
		return err
	}
	for i := int32(0); ; i++ {
		m, err := jobs.GetTimeout(10 * time.Second)
		if errors.Is(err, ErrShutdown) {
			break
		}
		if err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
		var sum uint32
		for _, b := range m {
			sum += uint32(b)
		}
		if err := recs.PutTimeout(qSegRec{Seq: i, Sum: sum, Len: int64(len(m))}, 10*time.Second); err != nil {
			return err
		}
	}
	for {
		if _, err := tasks.GetTimeout(10 * time.Second); errors.Is(err, ErrShutdown) {
			break
		} else if err != nil {
			return err
		}
		if err := tasks.TaskDone(); err != nil {
			return err
		}
	}
	fmt.Println("done")
	return nil
}

// TestQueueSegment places a Queue, a Typed queue and a JoinableQueue in a
// real segment by name; another process opens them by name and exchanges
// messages with this one; both processes get the kind, type and name
// mismatch errors.
func TestQueueSegment(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	jobs, err := Create(seg, "jobs", 4, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := CreateTyped[qSegRec](seg, "recs", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := CreateJoinable(seg, "tasks", 8, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "raw", Kind: shm.KindBytes, Size: 64}, nil); err != nil {
		t.Fatal(err)
	}
	for _, create := range []func() error{
		func() error { _, err := Create(seg, "jobs", 4, 8, nil); return err },
		func() error { _, err := CreateTyped[qSegRec](seg, "tasks", 4, nil); return err },
		func() error { _, err := CreateJoinable(seg, "recs", 4, 8, nil); return err },
	} {
		if err := create(); !errors.Is(err, shm.ErrExist) {
			t.Errorf("Create on a taken name: %v, want shm.ErrExist", err)
		}
	}
	if _, err := Create(seg, "huge", 1<<16, 1<<10, nil); !errors.Is(err, shm.ErrFull) {
		t.Errorf("Create larger than the segment: %v, want shm.ErrFull", err)
	}
	if _, err := Create(seg, "bad", MaxCapacity+1, 8, nil); !errors.Is(err, ErrInvalidParam) {
		t.Errorf("Create with capacity MaxCapacity+1: %v, want ErrInvalidParam", err)
	}
	if err := qSegCheckOpens(seg); err != nil {
		t.Error(err)
	}
	// A second handle in this process, through Open, sees the same queue.
	again, err := OpenTyped[qSegRec](seg, "recs", nil)
	if err != nil {
		t.Fatal(err)
	}

	const tasksN = 5
	for i := range tasksN {
		if err := tasks.TryPut([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	tasks.Shutdown(false) // the peer drains the tasks, then sees ErrShutdown
	child := proctest.Start(t, "q-seg-peer", name)
	// More messages than either ring holds: both sides block on the other.
	msgs := []string{"A", "B", "C", "", "a longer message of some forty bytes....", "end"}
	for _, m := range msgs {
		if err := jobs.PutTimeout([]byte(m), 10*time.Second); err != nil {
			t.Fatalf("put %q: %v (child: %s)", m, err, child.Wait(time.Second).Stderr)
		}
	}
	jobs.Shutdown(false)
	for i, m := range msgs {
		r, err := again.GetTimeout(10 * time.Second)
		if err != nil {
			t.Fatalf("record %d: %v (child: %s)", i, err, child.Wait(time.Second).Stderr)
		}
		var sum uint32
		for _, b := range []byte(m) {
			sum += uint32(b)
		}
		if r != (qSegRec{Seq: int32(i), Sum: sum, Len: int64(len(m))}) {
			t.Errorf("record %d: %+v, want %q's", i, r, m)
		}
	}
	if ok, err := tasks.JoinTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Join: %v %v; %d unfinished", ok, err, tasks.Unfinished())
	}
	if out := child.WaitOK(); out != "done\n" {
		t.Errorf("child printed %q", out)
	}
	if err := tasks.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Errorf("TaskDone beyond the tasks taken: %v", err)
	}
	if _, err := recs.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Errorf("records left: %v", err)
	}
}
