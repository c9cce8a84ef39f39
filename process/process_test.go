//go:build linux

package process_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/process"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

func TestMain(m *testing.M) {
	process.Register("sum", roleSum)
	process.Register("exit3", func([]string) error {
		fmt.Fprintln(os.Stderr, "exit3: the disk is on fire")
		os.Exit(3)
		return nil
	})
	process.Register("panic", func([]string) error { panic("the role panics on purpose") })
	process.Register("fail", func([]string) error { return errors.New("refusing on purpose") })
	process.Register("ignoreterm", func([]string) error {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return nil
	})
	process.Register("sleep", func([]string) error {
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return nil
	})
	process.Register("spawner", roleSpawner)
	process.Register("chatty", func([]string) error {
		for i := range 2000 {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		}
		return errors.New("done talking")
	})
	process.Register("segment", func(args []string) error {
		i, _ := strconv.Atoi(args[0])
		_, err := process.Segment(i)
		return err
	})
	process.Main()
	os.Exit(m.Run())
}

// roleSum attaches the memfd segment (0) and the named one (1) and adds 1
// to the Value "total" in segment 0 args[0] times, each under the Lock
// "lock" of segment 1 with a plain load and store: only the Lock keeps
// the increments from being lost.
func roleSum(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	anon, err := process.Segment(0)
	if err != nil {
		return err
	}
	defer anon.Close()
	named, err := process.Segment(1)
	if err != nil {
		return err
	}
	defer named.Close()
	total, err := value.Open[int64](anon, "total", nil)
	if err != nil {
		return err
	}
	l, err := lock.Open(named, "lock", nil)
	if err != nil {
		return err
	}
	for range n {
		if err := l.Acquire(context.Background()); err != nil {
			return err
		}
		total.Store(total.Load() + 1)
		if err := l.Release(); err != nil {
			return err
		}
	}
	fmt.Printf("added %d\n", n)
	return nil
}

// roleSpawner starts two sleeping children, prints their pids and sleeps.
func roleSpawner([]string) error {
	for range 2 {
		p, err := process.Start(context.Background(), "sleep", &process.Options{Stdout: io.Discard})
		if err != nil {
			return err
		}
		fmt.Println(p.Pid())
	}
	time.Sleep(time.Minute)
	return nil
}

func tempName(t *testing.T) string {
	name := fmt.Sprintf("mpipc-test-%d-process-%s", os.Getpid(), t.Name())
	t.Cleanup(func() { os.Remove("/dev/shm/" + name) })
	return name
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSumSegmentsUnderLock(t *testing.T) {
	anon, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	named, err := shm.Create(tempName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	total, err := value.Create[int64](anon, "total", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Create(named, "lock", nil); err != nil {
		t.Fatal(err)
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var outs [4]lockedBuffer
	var ps []*process.Process
	for i := range outs {
		p, err := process.Start(context.Background(), "sum", &process.Options{
			Args:     []string{strconv.Itoa(n)},
			Segments: []*shm.Segment{anon, named},
			Stdout:   &outs[i],
		})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		if err := p.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		if st := p.State(); st == nil || st.ExitCode() != 0 || p.Alive() {
			t.Fatalf("child %d: state %v alive %v", i, st, p.Alive())
		}
		if got, want := outs[i].String(), fmt.Sprintf("added %d\n", n); got != want {
			t.Fatalf("child %d printed %q, want %q", i, got, want)
		}
	}
	if got, want := total.Load(), int64(4*n); got != want {
		t.Fatalf("total = %d, want %d", got, want)
	}
}

func TestFailuresReportStatusAndStderr(t *testing.T) {
	cases := []struct {
		role   string
		code   int
		stderr string
	}{
		{"exit3", 3, "the disk is on fire"},
		{"panic", 2, "panic: the role panics on purpose"},
		{"fail", 1, "fail: refusing on purpose"},
	}
	for _, c := range cases {
		p, err := process.Start(context.Background(), c.role, &process.Options{Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Wait()
		var ee *process.ExitError
		if !errors.Is(err, process.ErrExit) || !errors.As(err, &ee) {
			t.Fatalf("%s: Wait = %v, want an ExitError", c.role, err)
		}
		if ee.Code != c.code || ee.Signal != 0 || ee.Pid != p.Pid() || ee.Role != c.role {
			t.Fatalf("%s: %+v, want code %d", c.role, ee, c.code)
		}
		if !strings.Contains(ee.Stderr, c.stderr) || !strings.Contains(err.Error(), c.stderr) ||
			!strings.Contains(err.Error(), "status "+strconv.Itoa(c.code)) {
			t.Fatalf("%s: error %q lacks the status or %q", c.role, err, c.stderr)
		}
	}
}

func TestKilledChildReportsSignal(t *testing.T) {
	r, w, _ := os.Pipe()
	p, err := process.Start(context.Background(), "sleep", &process.Options{Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(r).ReadString('\n')
	if !p.Alive() {
		t.Fatal("child not alive after it printed")
	}
	p.Kill()
	var ee *process.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || ee.Code != -1 {
		t.Fatalf("Wait = %v, want killed by SIGKILL", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
}

func TestStderrTailIsBounded(t *testing.T) {
	p, err := process.Start(context.Background(), "chatty", &process.Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var ee *process.ExitError
	if err := p.Wait(); !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if len(ee.Stderr) > process.StderrTail || !strings.HasSuffix(ee.Stderr, "chatty: done talking\n") || strings.Contains(ee.Stderr, "line 0\n") {
		t.Fatalf("tail of %d bytes: %q", len(ee.Stderr), ee.Stderr[:min(100, len(ee.Stderr))])
	}
}

func TestCancelKillsChildIgnoringSIGTERM(t *testing.T) {
	const grace = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	r, w, _ := os.Pipe()
	p, err := process.Start(ctx, "ignoreterm", &process.Options{Stdout: w, Grace: grace})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := bufio.NewReader(r).ReadString('\n'); l != "ready\n" {
		t.Fatalf("child printed %q", l)
	}
	t0 := time.Now()
	cancel()
	select {
	case <-p.Done():
	case <-time.After(grace + 2*time.Second):
		t.Fatal("child still alive well after the grace period")
	}
	el := time.Since(t0)
	var ee *process.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Fatalf("Wait = %v, want SIGKILL (SIGTERM was ignored)", err)
	}
	if el < grace {
		t.Fatalf("killed after %v, before the grace period %v", el, grace)
	}
	t.Logf("killed %v after cancel (grace %v)", el, grace)
}

func TestCancelTerminatesWithSIGTERM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w, _ := os.Pipe()
	p, err := process.Start(ctx, "sleep", &process.Options{Stdout: w, Grace: time.Minute})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(r).ReadString('\n')
	cancel()
	var ee *process.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM {
		t.Fatalf("Wait = %v, want SIGTERM", err)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// state is the field after the parenthesised command
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

// TestParentKilledTakesChildren: this test process is the grandparent. It
// starts a spawner, which starts two children; SIGKILL to the spawner
// must end the children (Pdeathsig).
func TestParentKilledTakesChildren(t *testing.T) {
	r, w, _ := os.Pipe()
	p, err := process.Start(context.Background(), "spawner", &process.Options{Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	br := bufio.NewReader(r)
	var pids []int
	for range 2 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading pids: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(l))
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("grandchild %d not alive before the kill", pid)
		}
	}
	p.Kill()
	p.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				for _, p := range pids {
					syscall.Kill(p, syscall.SIGKILL)
				}
				t.Fatalf("grandchild %d outlived its SIGKILLed parent", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestOrphanExitsAtStart: a child whose recorded parent is not its parent
// (the parent died before Pdeathsig was armed) exits with status 2 before
// running its role.
func TestOrphanExitsAtStart(t *testing.T) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "MPIPC_ROLE=sleep", "MPIPC_PARENT=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "parent 1 is gone") {
		t.Fatalf("orphan: %v, output %q", err, out)
	}
}

func TestClosedSegment(t *testing.T) {
	anon, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	anon.Close()
	if _, err := process.Start(context.Background(), "sleep", &process.Options{Segments: []*shm.Segment{anon}}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Start with a closed segment = %v, want os.ErrClosed", err)
	}
}

func TestUnknownRole(t *testing.T) {
	if _, err := process.Start(context.Background(), "no-such-role", nil); !errors.Is(err, process.ErrUnknownRole) {
		t.Fatalf("Start = %v, want ErrUnknownRole", err)
	}
}

func TestSegmentNotHandedOver(t *testing.T) {
	if _, err := process.Segment(0); !errors.Is(err, process.ErrNotChild) {
		t.Fatalf("Segment in the parent = %v, want ErrNotChild", err)
	}
	if _, err := process.File(0); !errors.Is(err, process.ErrNotChild) {
		t.Fatalf("File in the parent = %v, want ErrNotChild", err)
	}
	// In a child given one segment, index 1 is not there.
	anon, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	p, err := process.Start(context.Background(), "segment", &process.Options{Args: []string{"1"}, Segments: []*shm.Segment{anon}, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var ee *process.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || !strings.Contains(ee.Stderr, process.ErrNotChild.Error()) {
		t.Fatalf("child attaching segment 1 of 1: %v", err)
	}
	p, err = process.Start(context.Background(), "segment", &process.Options{Args: []string{"0"}, Segments: []*shm.Segment{anon}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("child attaching segment 0 of 1: %v", err)
	}
}

func TestGroupFirstFailureCancelsRest(t *testing.T) {
	g, ctx := process.NewGroup(context.Background())
	var sleepers []*process.Process
	for range 2 {
		r, w, _ := os.Pipe()
		p, err := g.Start("sleep", &process.Options{Stdout: w})
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(r).ReadString('\n')
		sleepers = append(sleepers, p)
	}
	if _, err := g.Start("exit3", &process.Options{Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("group did not end after a child failed")
	}
	var ee *process.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Role != "exit3" {
		t.Fatalf("Wait = %v, want exit3's status 3", err)
	}
	if ctx.Err() == nil {
		t.Fatal("group context not cancelled")
	}
	for _, p := range sleepers {
		if err := p.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM {
			t.Fatalf("sleeper: %v, want SIGTERM", err)
		}
	}
	if n := len(g.Processes()); n != 3 {
		t.Fatalf("%d processes in the group, want 3", n)
	}
}

func TestGroupAllSucceed(t *testing.T) {
	g, _ := process.NewGroup(context.Background())
	for range 3 {
		if _, err := g.Start("segment", &process.Options{Args: []string{"0"}, Stderr: io.Discard}); err != nil {
			t.Fatal(err)
		}
	}
	// every child fails: no segment was handed over
	if err := g.Wait(); !errors.Is(err, process.ErrExit) {
		t.Fatalf("Wait = %v, want ErrExit", err)
	}
	g, _ = process.NewGroup(context.Background())
	anon, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	for range 3 {
		if _, err := g.Start("segment", &process.Options{Args: []string{"0"}, Segments: []*shm.Segment{anon}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}
