//go:build linux

// Package proctest runs test participants as real processes: the test
// binary re-executes itself in a child role that TestMain picks up, so every
// child has its own address space, pid and fate.
//
// In a package's tests:
//
//	func TestMain(m *testing.M) {
//		proctest.Register("adder", func(args []string) error { ... })
//		proctest.Main(m)
//	}
//
//	func TestX(t *testing.T) {
//		c := proctest.Start(t, "adder", "/dev/shm/x", "1000")
//		out := c.WaitOK(t)
//	}
//
// A child reports results by printing lines to stdout; the parent reads
// them with Child.Line or gets them all from Wait. Files passed in
// Options.Files appear in the child as fd 3, 4, ... (see ChildFile).
package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/reexec"
)

// DefaultTimeout bounds how long Wait and Line wait for a child.
var DefaultTimeout = 60 * time.Second

// Register makes fn runnable as a child role (see process.Register). Call
// it before Main.
func Register(name string, fn func(args []string) error) { reexec.Register(name, fn) }

// IsChild reports whether this process runs as a child role.
func IsChild() bool { return reexec.IsChild() }

// Main runs the child role if this process is a child (process.Main: exit
// 0 when the role returns nil, 1 with the error on stderr otherwise); else
// it runs the tests with m.Run and exits.
func Main(m *testing.M) {
	reexec.Main()
	os.Exit(m.Run())
}

// ChildFile returns the i-th file passed in Options.Files (fd 3+i), in a
// child.
func ChildFile(i int) *os.File { return os.NewFile(uintptr(3+i), fmt.Sprintf("extra%d", i)) }

// Options configure Start.
type Options struct {
	Args  []string   // the role's arguments
	Files []*os.File // inherited as fd 3, 4, ...
	Env   []string   // extra environment, KEY=VALUE
	// Wrap is a command that runs the child, such as
	// {"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"} for a
	// child in a pid namespace of its own: the child is started as
	// Wrap... test-binary args.... Pid, Kill and Signal then address the
	// wrapper.
	Wrap []string
}

// Child is a running child process.
type Child struct {
	tb    testing.TB
	role  string
	p     *reexec.Process
	lines chan string
	mu    sync.Mutex
	out   bytes.Buffer
	part  []byte // stdout after its last newline
	errb  bytes.Buffer
	done  chan struct{}
	ended atomic.Bool
}

// Result is how a child ended.
type Result struct {
	Code     int            // exit code; -1 if killed by a signal
	Signal   syscall.Signal // the signal that killed it, or 0
	Stdout   string
	Stderr   string
	TimedOut bool // Wait gave up and killed it
}

// Start runs role in a new process with args.
func Start(tb testing.TB, role string, args ...string) *Child {
	tb.Helper()
	return StartOpts(tb, role, Options{Args: args})
}

// StartOpts runs role in a new process.
func StartOpts(tb testing.TB, role string, o Options) *Child {
	tb.Helper()
	c := &Child{tb: tb, role: role, lines: make(chan string, 1024), done: make(chan struct{})}
	p, err := reexec.Start(context.Background(), role, &reexec.Options{
		Args: o.Args, Env: o.Env, Files: o.Files, Wrap: o.Wrap,
		Stdout: stdoutWriter{c}, Stderr: &lockedWriter{mu: &c.mu, b: &c.errb},
	})
	if err != nil {
		tb.Fatalf("proctest: %v", err)
	}
	c.p = p
	go func() {
		<-p.Done() // the child's stdout is all written by now
		c.mu.Lock()
		if len(c.part) > 0 {
			c.line(string(c.part))
			c.part = nil
		}
		c.mu.Unlock()
		close(c.lines)
		c.ended.Store(true)
		close(c.done)
	}()
	tb.Cleanup(func() {
		if !c.ended.Load() {
			c.Kill()
			<-c.done
		}
	})
	return c
}

// stdoutWriter splits the child's stdout into lines.
type stdoutWriter struct{ c *Child }

func (w stdoutWriter) Write(p []byte) (int, error) {
	c, n := w.c, len(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.part = append(c.part, p...)
			break
		}
		c.line(string(append(c.part, p[:i]...)))
		c.part = c.part[:0]
		p = p[i+1:]
	}
	return n, nil
}

// line hands one line to Line; with c.mu held.
func (c *Child) line(l string) {
	select {
	case c.lines <- l:
	default: // nobody reads lines: they stay in out
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.p.Pid() }

// Kill sends SIGKILL to the child.
func (c *Child) Kill() { c.p.Kill() }

// Signal sends sig to the child.
func (c *Child) Signal(sig os.Signal) error { return c.p.Signal(sig) }

// Done is closed when the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Line returns the child's next line of stdout, failing the test if none
// comes within timeout (0: DefaultTimeout) or the child exits first.
func (c *Child) Line(timeout time.Duration) string {
	c.tb.Helper()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			r := c.Wait(time.Second)
			c.tb.Fatalf("proctest: %s exited (code %d, signal %v) before printing a line; stderr:\n%s", c.role, r.Code, r.Signal, r.Stderr)
		}
		return l
	case <-t.C:
		c.tb.Fatalf("proctest: no line from %s within %v", c.role, timeout)
	}
	return ""
}

// Expect reads lines until one equals want, failing the test on timeout.
func (c *Child) Expect(want string, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(max(timeout, time.Millisecond))
	if timeout <= 0 {
		deadline = time.Now().Add(DefaultTimeout)
	}
	for {
		if l := c.Line(time.Until(deadline)); l == want {
			return
		}
	}
}

// Wait waits up to timeout (0: DefaultTimeout) for the child to exit, killing
// it if it does not, and returns how it ended.
func (c *Child) Wait(timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var r Result
	select {
	case <-c.done:
	case <-time.After(timeout):
		r.TimedOut = true
		c.Kill()
		<-c.done
	}
	c.mu.Lock()
	r.Stdout, r.Stderr = c.out.String(), c.errb.String()
	c.mu.Unlock()
	st := c.p.State()
	r.Code = st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal()
	}
	return r
}

// WaitOK waits for the child and fails the test unless it exited with 0. It
// returns the child's stdout.
func (c *Child) WaitOK() string {
	c.tb.Helper()
	r := c.Wait(0)
	if r.TimedOut || r.Code != 0 {
		c.tb.Fatalf("proctest: %s (pid %d) failed: code %d signal %v timed out %v\nstderr:\n%s\nstdout:\n%s",
			c.role, c.Pid(), r.Code, r.Signal, r.TimedOut, r.Stderr, r.Stdout)
	}
	return r.Stdout
}

// WaitAll waits for every child with WaitOK and returns their stdouts.
func WaitAll(cs []*Child) []string {
	outs := make([]string, len(cs))
	for i, c := range cs {
		outs[i] = c.WaitOK()
	}
	return outs
}

var seq atomic.Int64

// TempName returns a segment name unique to this test run and registers a
// cleanup that removes /dev/shm/NAME (and NAME in any dir passed).
func TempName(tb testing.TB) string {
	tb.Helper()
	base := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, tb.Name())
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("mpipc-test-%d-%d-%s", os.Getpid(), seq.Add(1), base)
	tb.Cleanup(func() {
		err := os.Remove(filepath.Join("/dev/shm", name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("proctest: removing %s: %v", name, err)
		}
	})
	return name
}

// Ready is what a child prints when it has set up and waits for Go.
const Ready = "ready"

// SignalReady prints Ready on stdout (child side).
func SignalReady() { fmt.Println(Ready) }

// SharedFile creates a file of size bytes in /dev/shm, maps it MAP_SHARED,
// and returns its path (to pass to children) and the mapping; both go away
// when the test ends. It is for tests of objects placed with Init/Attach in
// memory the test owns.
func SharedFile(tb testing.TB, size int) (string, []byte) {
	tb.Helper()
	path := filepath.Join("/dev/shm", TempName(tb))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return path, mem
}

// MapFile maps the whole file at path MAP_SHARED (the child side of
// SharedFile).
func MapFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// ThreadsStopped reports whether every thread of process pid is stopped
// (state T or t in /proc/PID/task/*/stat). A SIGSTOP stops a process's
// threads one by one: until all are, one may still be writing shared
// memory. It returns an error when no thread of pid is left in /proc.
func ThreadsStopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false, fmt.Errorf("no threads of %d in /proc", pid)
	}
	seen := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		seen++
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("%s: %q", p, b)
		}
		if s := b[i+2]; s != 'T' && s != 't' {
			return false, nil
		}
	}
	if seen == 0 {
		return false, fmt.Errorf("every thread of %d is gone", pid)
	}
	return true, nil
}

// WaitStopped waits until every thread of process pid has stopped (see
// ThreadsStopped), and fails the test if that takes over 10 s or the
// process is gone.
func WaitStopped(tb testing.TB, pid int) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Microsecond) {
		ok, err := ThreadsStopped(pid)
		if err != nil {
			tb.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("process %d did not stop", pid)
		}
	}
}
