// Package reexec is the machinery of package process: roles, the
// dispatcher, starting the current binary again and supervising it. It
// lives apart from process, which adds shm segments on top, so that the
// tests of shm itself (through internal/proctest) can start children too.
// See package process for the documentation.
package reexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultGrace is how long a child whose context was cancelled has between
// SIGTERM and SIGKILL, unless Options.Grace says otherwise.
const DefaultGrace = 2 * time.Second

// StderrTail is how many bytes of a child's stderr an [ExitError] keeps:
// the last ones written.
const StderrTail = 4096

// Environment of a child. Start removes any inherited values of these, so
// a child starting children of its own passes on only what it sets.
const (
	envRole     = "MPIPC_ROLE"     // the role to run
	envParent   = "MPIPC_PARENT"   // pid of the process that started the child
	envFiles    = "MPIPC_FILES"    // number of Options.Files (descriptors 3...)
	envSegments = "MPIPC_SEGMENTS" // one per line: "fd:N" or "path:P"
)

// Errors of process.
var (
	// ErrExit is returned (wrapped in an *ExitError) by Wait when the
	// child exited with a non-zero status or was killed by a signal.
	ErrExit = errors.New("process: child failed")
	// ErrUnknownRole is returned by Start for a role that is not
	// registered in this binary.
	ErrUnknownRole = errors.New("process: unknown role")
	// ErrNotChild is returned by Segment and File in a process that was
	// not started by Start, or for an index the parent did not hand over.
	ErrNotChild = errors.New("process: nothing handed over at this index")
)

var (
	rolesMu sync.Mutex
	roles   = map[string]func(args []string) error{}
)

// Register makes fn runnable as role in a child. Call it before [Main]
// (from an init function or at the top of main / TestMain). Registering a
// name twice panics.
func Register(role string, fn func(args []string) error) {
	rolesMu.Lock()
	defer rolesMu.Unlock()
	if role == "" || strings.ContainsAny(role, "\x00=") {
		panic("process: invalid role name " + strconv.Quote(role))
	}
	if _, dup := roles[role]; dup {
		panic("process: role registered twice: " + role)
	}
	roles[role] = fn
}

func lookup(role string) func([]string) error {
	rolesMu.Lock()
	defer rolesMu.Unlock()
	return roles[role]
}

// Role returns the role this process runs in, or "" if it was not started
// by Start.
func Role() string { return os.Getenv(envRole) }

// IsChild reports whether this process was started by Start.
func IsChild() bool { return Role() != "" }

// Main runs this process's role and exits, if it was started by Start;
// otherwise it returns at once. Call it first thing in main and TestMain.
//
// The child exits with status 0 when the role's function returns nil, 1
// (after printing the error on stderr) when it returns an error, and 2
// when the role is unknown or the parent died before the child could
// arm its parent-death signal.
func Main() {
	role := Role()
	if role == "" {
		return
	}
	if want, err := strconv.Atoi(os.Getenv(envParent)); err == nil && os.Getppid() != want {
		// The parent died before Pdeathsig was armed: we were reparented.
		fmt.Fprintf(os.Stderr, "%s: parent %d is gone; exiting\n", role, want)
		os.Exit(2)
	}
	fn := lookup(role)
	if fn == nil {
		fmt.Fprintf(os.Stderr, "process: unknown role %q in %s (parent and child binaries differ?)\n", role, os.Args[0])
		os.Exit(2)
	}
	if err := fn(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// File returns the i-th file the parent passed in Options.Files, in a
// child.
func File(i int) (*os.File, error) {
	n, err := strconv.Atoi(os.Getenv(envFiles))
	if err != nil || i < 0 || i >= n {
		return nil, fmt.Errorf("process: file %d: %w", i, ErrNotChild)
	}
	return os.NewFile(uintptr(3+i), "inherited-"+strconv.Itoa(i)), nil
}

// Segment is a segment to hand to a child: an open file, passed as a
// descriptor, or a path.
type Segment struct {
	File *os.File // if not nil, passed as a descriptor
	Path string   // else passed by path
}

// HandedSegment returns the i-th segment the parent passed in
// Options.Segments, in a child: File set for a descriptor (the inherited
// descriptor itself: whoever maps it should duplicate it), Path for a
// path.
func HandedSegment(i int) (Segment, error) {
	list := os.Getenv(envSegments)
	entries := strings.Split(list, "\n")
	if list == "" || i < 0 || i >= len(entries) {
		return Segment{}, fmt.Errorf("process: segment %d: %w", i, ErrNotChild)
	}
	kind, v, _ := strings.Cut(entries[i], ":")
	switch kind {
	case "fd":
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return Segment{}, fmt.Errorf("process: segment %d: bad descriptor %q: %w", i, v, ErrNotChild)
		}
		return Segment{File: os.NewFile(uintptr(fd), "memfd:segment-"+strconv.Itoa(i))}, nil
	case "path":
		return Segment{Path: v}, nil
	}
	return Segment{}, fmt.Errorf("process: segment %d: bad entry %q: %w", i, entries[i], ErrNotChild)
}

// Options configure Start. The zero value (or nil) means the defaults.
type Options struct {
	Args []string // the role's arguments
	Env  []string // extra environment, KEY=VALUE, on top of the parent's
	// Files are inherited as descriptors 3, 4, ... (see [File]).
	Files []*os.File
	// Segments are handed to the child (see [HandedSegment]): by
	// descriptor, after Files, or by path.
	Segments []Segment
	// Stdout receives the child's standard output. Default: the parent's
	// stdout.
	Stdout io.Writer
	// Stderr receives the child's standard error, as it comes; the last
	// StderrTail bytes are kept for the ExitError either way. Default: the
	// parent's stderr.
	Stderr io.Writer
	// Grace is the time between SIGTERM and SIGKILL when ctx is
	// cancelled. Default DefaultGrace (2 s).
	Grace time.Duration
	// Wrap is a command that runs the child, such as {"unshare", "--pid",
	// "--fork", "--mount-proc", "--kill-child"} for a child in a pid
	// namespace of its own: the child is started as Wrap... executable
	// args.... Pid, Signal and Kill then address the wrapper, and the
	// child's start-up check that its parent still lives is off (its
	// parent is the wrapper, or nobody it can see).
	Wrap []string
}

// Process is a child started by Start. Its methods may be called from any
// goroutine.
type Process struct {
	role  string
	cmd   *exec.Cmd
	tail  tailBuffer
	done  chan struct{}
	err   error // set before done closes
	grace time.Duration
}

// ExitError is how Wait reports a child that did not exit with status 0.
type ExitError struct {
	Role   string
	Pid    int
	Code   int            // exit status, -1 if killed by a signal
	Signal syscall.Signal // the signal that killed it, or 0
	Stderr string         // the last StderrTail bytes of its stderr
	Err    error          // from the wait itself, if the wait failed
}

func (e *ExitError) Error() string {
	var how string
	switch {
	case e.Signal != 0:
		how = "killed by signal " + e.Signal.String()
	case e.Err != nil && e.Code < 0:
		how = e.Err.Error()
	default:
		how = "exited with status " + strconv.Itoa(e.Code)
	}
	s := fmt.Sprintf("process: %s (pid %d) %s", e.Role, e.Pid, how)
	if t := strings.TrimSpace(e.Stderr); t != "" {
		s += "; stderr: " + t
	}
	return s
}

// Is makes errors.Is(err, ErrExit) true.
func (e *ExitError) Is(target error) bool { return target == ErrExit }

// Start runs role in a new process: the current binary, re-executed. The
// role must be registered in this binary (else ErrUnknownRole). Cancelling
// ctx (nil: never) terminates the child: SIGTERM, then SIGKILL after
// opts.Grace.
func Start(ctx context.Context, role string, opts *Options) (*Process, error) {
	if opts == nil {
		opts = &Options{}
	}
	if lookup(role) == nil {
		return nil, fmt.Errorf("process: starting %q: %w", role, ErrUnknownRole)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("process: finding own executable: %w", err)
	}
	cmd := exec.Command(exe, opts.Args...)
	parent := envParent + "=" + strconv.Itoa(os.Getpid())
	if w := opts.Wrap; len(w) > 0 {
		cmd = exec.Command(w[0], append(append(w[1:len(w):len(w)], exe), opts.Args...)...)
		parent = envParent + "="
	}
	files := append([]*os.File(nil), opts.Files...)
	var segs []string
	for _, s := range opts.Segments {
		if s.File != nil {
			segs = append(segs, "fd:"+strconv.Itoa(3+len(files)))
			files = append(files, s.File)
		} else {
			segs = append(segs, "path:"+s.Path)
		}
	}
	cmd.Env = childEnv(os.Environ(), opts.Env,
		envRole+"="+role,
		parent,
		envFiles+"="+strconv.Itoa(len(opts.Files)),
		envSegments+"="+strings.Join(segs, "\n"))
	cmd.ExtraFiles = files
	cmd.Stdout = opts.Stdout
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	p := &Process{role: role, cmd: cmd, done: make(chan struct{}), grace: opts.Grace}
	if p.grace <= 0 {
		p.grace = DefaultGrace
	}
	p.tail.w = opts.Stderr
	if p.tail.w == nil {
		p.tail.w = os.Stderr
	}
	cmd.Stderr = &p.tail
	// A grandchild that inherited the output pipes must not keep Wait
	// from returning once the child itself has exited.
	cmd.WaitDelay = time.Second
	attr, err := deathSignal()
	if err != nil {
		return nil, fmt.Errorf("process: starting %q: %w", role, err)
	}
	cmd.SysProcAttr = attr
	if err := forkOnStarter(cmd); err != nil {
		return nil, fmt.Errorf("process: starting %q (%s): %w", role, exe, err)
	}
	go p.wait()
	if ctx != nil && ctx.Done() != nil {
		go p.watch(ctx)
	}
	return p, nil
}

// childEnv is base without the variables Start sets, then extra, then set.
func childEnv(base, extra []string, set ...string) []string {
	env := make([]string, 0, len(base)+len(extra)+len(set))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); k == envRole || k == envParent || k == envFiles || k == envSegments {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, extra...), set...)
}

// The starter: one goroutine locked to its OS thread for the life of the
// process forks every child, so that the thread Pdeathsig is tied to never
// exits before the process does.
var (
	starterOnce sync.Once
	starterReq  chan startReq
)

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

func forkOnStarter(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starterReq = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range starterReq {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := startReq{cmd: cmd, err: make(chan error, 1)}
	starterReq <- r
	return <-r.err
}

func (p *Process) wait() {
	err := p.cmd.Wait()
	st := p.cmd.ProcessState
	if st != nil && !st.Success() {
		e := &ExitError{Role: p.role, Pid: p.cmd.Process.Pid, Code: st.ExitCode(), Stderr: p.tail.String()}
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		}
		err = e
	} else if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		err = &ExitError{Role: p.role, Pid: p.cmd.Process.Pid, Code: -1, Stderr: p.tail.String(), Err: err}
	} else {
		err = nil
	}
	p.err = err
	close(p.done)
}

func (p *Process) watch(ctx context.Context) {
	select {
	case <-p.done:
		return
	case <-ctx.Done():
	}
	p.Signal(syscall.SIGTERM)
	t := time.NewTimer(p.grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
	}
}

// Role returns the role the process runs.
func (p *Process) Role() string { return p.role }

// Pid returns the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Alive reports whether the child has not yet exited (been reaped).
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits for the child to exit. It returns nil for exit status 0, an
// [*ExitError] (errors.Is(err, ErrExit)) otherwise. It may be called any
// number of times, from any goroutine.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the child; os.ErrProcessDone once it has been
// reaped (so a reused pid is never signalled).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the child.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// State returns the child's exit state, or nil while it runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Stderr returns the last StderrTail bytes the child wrote on stderr so
// far.
func (p *Process) Stderr() string { return p.tail.String() }

// tailBuffer copies writes to w and keeps the last StderrTail bytes.
type tailBuffer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		t.w.Write(b) // a failing sink must not stop the child's output
	}
	if len(b) >= StderrTail {
		t.buf = append(t.buf[:0], b[len(b)-StderrTail:]...)
	} else {
		if over := len(t.buf) + len(b) - StderrTail; over > 0 {
			t.buf = append(t.buf[:0], t.buf[over:]...)
		}
		t.buf = append(t.buf, b...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
