//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

func init() {
	roles["q-life"] = qRoleLife
}

// q-life PATH ACTION [JOINABLE]: one step of a queue's life in another
// process.
//
//	close    puts "c", closes its handle, checks its calls fail with
//	         ErrClosed, prints "closed"
//	drain    gets until ErrShutdown; prints the count, after checking a
//	         Put fails with ErrShutdown
//	shut     Shutdown(false);  shutnow: Shutdown(true)
//	restart  Restart, then puts "again"
func qRoleLife(args []string) error {
	mem, err := qChildMap(args[0])
	if err != nil {
		return err
	}
	q, err := Attach(mem, nil)
	if err != nil {
		return err
	}
	switch args[1] {
	case "close":
		if err := q.Put(context.Background(), []byte("c")); err != nil {
			return err
		}
		if err := q.Close(); err != nil {
			return err
		}
		if err := q.TryPut([]byte("d")); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("Put after Close: %v", err)
		}
		if _, err := q.TryGet(); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("Get after Close: %v", err)
		}
		fmt.Println("closed")
	case "drain":
		n := 0
		for {
			_, err := q.GetTimeout(30 * time.Second)
			if errors.Is(err, ErrShutdown) {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		if err := q.TryPut([]byte("x")); !errors.Is(err, ErrShutdown) {
			return fmt.Errorf("Put after Shutdown: %v", err)
		}
		fmt.Println(n)
	case "shut", "shutnow":
		return q.Shutdown(args[1] == "shutnow")
	case "restart":
		if err := q.Restart(); err != nil {
			return err
		}
		return q.Put(context.Background(), []byte("again"))
	default:
		return fmt.Errorf("unknown action %q", args[1])
	}
	return nil
}

// TestQueueCloseIsPerProcess: a process that closes its handle stops
// nobody: this process and a third one go on putting and getting.
func TestQueueCloseIsPerProcess(t *testing.T) {
	mem, path := qTestMap(t, SizeOf(6, 16))
	q, err := Init(mem, 6, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "q-life", path, "close")
	c.Expect("closed", 0)
	c.WaitOK()
	if q.IsShutdown() || q.Closed() {
		t.Fatalf("after another process's Close: %+v", q.State())
	}
	if m, err := q.TryGet(); err != nil || string(m) != "c" {
		t.Fatalf("the closing process's message: %q %v", m, err)
	}
	for i := range 3 {
		if err := q.TryPut([]byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("Put after another process's Close: %v", err)
		}
	}
	// A third process drains what is there; only Shutdown stops it.
	d := proctest.Start(t, "q-life", path, "drain")
	deadline := time.Now().Add(30 * time.Second)
	for !q.Empty() {
		if time.Now().After(deadline) {
			t.Fatal("the draining process took nothing")
		}
		time.Sleep(time.Millisecond)
	}
	q.Shutdown(false)
	if out := strings.TrimSpace(d.WaitOK()); out != "3" {
		t.Fatalf("third process got %s messages, want 3", out)
	}
}

// TestQueueShutdownProcesses: Shutdown in one process makes Puts fail and
// Gets drain then fail in every process; an immediate Shutdown from
// another process discards and lets a JoinableQueue's Join return; a
// Restart from another process makes the queue usable again.
func TestQueueShutdownProcesses(t *testing.T) {
	const total = 50
	mem, path := qTestMap(t, SizeOf(6, 16))
	q, err := Init(mem, 6, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*proctest.Child
	for range 2 {
		cs = append(cs, proctest.Start(t, "q-life", path, "drain"))
	}
	for i := range total {
		if err := q.PutTimeout([]byte(strconv.Itoa(i)), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Messages are still in the queue when it is shut down: the
	// consumers drain them before they fail.
	if err := q.Shutdown(false); err != nil {
		t.Fatal(err)
	}
	if err := q.TryPut([]byte("late")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Put after Shutdown: %v", err)
	}
	got := 0
	for _, out := range proctest.WaitAll(cs) {
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got != total || q.Len() != 0 {
		t.Fatalf("consumers got %d of %d, Len %d", got, total, q.Len())
	}

	// Restart from another process.
	proctest.Start(t, "q-life", path, "restart").WaitOK()
	if q.IsShutdown() {
		t.Fatal("still shut down after another process's Restart")
	}
	if m, err := q.TryGet(); err != nil || string(m) != "again" {
		t.Fatalf("after Restart: %q %v", m, err)
	}

	// Immediate, from another process, on a JoinableQueue with tasks in it.
	jmem, jpath := qTestMap(t, SizeOfJoinable(6, 16))
	jq, err := InitJoinable(jmem, 6, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := jq.TryPut([]byte("task")); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := jq.TryJoin(); ok {
		t.Fatal("Join done with 6 tasks queued")
	}
	proctest.Start(t, "q-life", jpath, "shutnow").WaitOK()
	if ok, err := jq.JoinTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Join after another process's immediate Shutdown: %v %v", ok, err)
	}
	if _, err := jq.TryGet(); !errors.Is(err, ErrShutdown) || jq.Len() != 0 {
		t.Fatalf("Get after an immediate Shutdown: %v, Len %d", err, jq.Len())
	}
	if err := jq.TryPut([]byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Put after an immediate Shutdown: %v", err)
	}
	proctest.Start(t, "q-life", jpath, "restart").WaitOK()
	if m, err := jq.TryGet(); err != nil || string(m) != "again" {
		t.Fatalf("joinable after Restart: %q %v", m, err)
	}
	if err := jq.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := jq.TryJoin(); !ok {
		t.Fatal("Join not done after the restarted queue's task was done")
	}
}
