//go:build linux

package barrier_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

// childDrain: SEG MODE — opens barrier "b" in segment SEG, says "ready",
// waits once and says "idx N ERR"; with MODE "abort" it then aborts the
// barrier and says "aborted"; then it waits again and says "again ERR".
func childDrain(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	b, err := barrier.Open(seg, "b", nil)
	if err != nil {
		return err
	}
	proctest.SignalReady()
	idx, err := b.Wait(context.Background())
	fmt.Println("idx", idx, err)
	if args[1] == "abort" {
		b.Abort()
		fmt.Println("aborted")
	}
	_, err = b.WaitTimeout(5 * time.Second)
	fmt.Println("again", errors.Is(err, barrier.ErrBrokenBarrier))
	return nil
}

// childTimeout: SEG — opens barrier "t" without options and waits alone;
// says how long it took and what it got.
func childTimeout(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	b, err := barrier.Open(seg, "t", nil)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = b.Wait(context.Background())
	fmt.Println(errors.Is(err, barrier.ErrTimedOut), time.Since(start).Milliseconds())
	return nil
}

func drainSetup(t *testing.T) (*shm.Segment, *barrier.Barrier) {
	t.Helper()
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	b, err := barrier.Create(seg, "b", 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	return seg, b
}

func idxLine(t *testing.T, c *proctest.Child) int {
	t.Helper()
	var idx int
	var e string
	line := c.Line(0)
	if _, err := fmt.Sscanf(line, "idx %d %s", &idx, &e); err != nil || e != "<nil>" {
		t.Fatalf("a party of the tripped round said %q, want its index and no error", line)
	}
	return idx
}

// An Abort that arrives while a tripped round is still letting its parties
// out does not fail them: the round is complete, every party of it gets
// its index; later waits fail until Reset. Here the last party (index 2)
// aborts while both others are stopped in the drain.
func TestAbortDuringDrainFromLastParty(t *testing.T) {
	seg, b := drainSetup(t)
	var cs []*proctest.Child
	for range 2 {
		c := proctest.Start(t, "drain", seg.Path(), "wait")
		c.Expect(proctest.Ready, 0)
		cs = append(cs, c)
	}
	waitFor(t, "two waiting", func() bool { return b.NWaiting() == 2 })
	for _, c := range cs {
		c.Signal(syscall.SIGSTOP)
		proctest.WaitStopped(t, c.Pid())
	}
	if idx, err := b.Wait(context.Background()); idx != 2 || err != nil {
		t.Fatalf("last party: %d, %v", idx, err)
	}
	b.Abort()
	seen := map[int]bool{}
	for _, c := range cs {
		c.Signal(syscall.SIGCONT)
		seen[idxLine(t, c)] = true
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("indices %v, want 0 and 1", seen)
	}
	for _, c := range cs {
		c.Expect("again true", 0)
	}
	if _, err := b.WaitTimeout(time.Second); !errors.Is(err, barrier.ErrBrokenBarrier) {
		t.Fatalf("a Wait after the abort: %v, want ErrBrokenBarrier", err)
	}
}

// The same with the Abort from the party that left first (index 1) while
// the third (index 0) is stopped in the drain; then Reset makes the
// barrier usable again.
func TestAbortDuringDrainFromMiddleParty(t *testing.T) {
	seg, b := drainSetup(t)
	x := proctest.Start(t, "drain", seg.Path(), "abort")
	x.Expect(proctest.Ready, 0)
	y := proctest.Start(t, "drain", seg.Path(), "wait")
	y.Expect(proctest.Ready, 0)
	waitFor(t, "two waiting", func() bool { return b.NWaiting() == 2 })
	y.Signal(syscall.SIGSTOP)
	proctest.WaitStopped(t, y.Pid())
	if idx, err := b.Wait(context.Background()); idx != 2 || err != nil {
		t.Fatalf("last party: %d, %v", idx, err)
	}
	if idx := idxLine(t, x); idx != 1 {
		t.Fatalf("the running party left with index %d, want 1", idx)
	}
	x.Expect("aborted", 0)
	y.Signal(syscall.SIGCONT)
	if idx := idxLine(t, y); idx != 0 {
		t.Fatalf("the stopped party left with index %d, want 0", idx)
	}
	x.Expect("again true", 0)
	y.Expect("again true", 0)
	if _, err := b.WaitTimeout(time.Second); !errors.Is(err, barrier.ErrBrokenBarrier) {
		t.Fatalf("a Wait after the abort: %v, want ErrBrokenBarrier", err)
	}
	b.Reset()
	if b.Broken() {
		t.Fatal("broken after Reset")
	}
}

// The default timeout belongs to the barrier: a process that opens it
// without options waits with the timeout given at Create.
func TestDefaultTimeoutIsShared(t *testing.T) {
	seg, _ := drainSetup(t)
	if _, err := barrier.Create(seg, "t", 2, &barrier.Options{Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "timeout", seg.Path())
	var timedOut bool
	var ms int
	line := c.Line(10 * time.Second)
	if _, err := fmt.Sscanf(line, "%t %d", &timedOut, &ms); err != nil || !timedOut || ms < 200 || ms > 5000 {
		t.Fatalf("a process that opened without options said %q; want ErrTimedOut after about 200 ms", line)
	}
}
