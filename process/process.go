package process

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mpipc/mpipc/internal/reexec"
	"github.com/mpipc/mpipc/shm"
)

// DefaultGrace is how long a child whose context was cancelled has between
// SIGTERM and SIGKILL, unless Options.Grace says otherwise.
const DefaultGrace = reexec.DefaultGrace

// StderrTail is how many bytes of a child's stderr an [ExitError] keeps:
// the last ones written.
const StderrTail = reexec.StderrTail

// Errors of process.
var (
	// ErrExit is returned (wrapped in an *ExitError) by Wait when the
	// child exited with a non-zero status or was killed by a signal.
	ErrExit = reexec.ErrExit
	// ErrUnknownRole is returned by Start for a role that is not
	// registered in this binary.
	ErrUnknownRole = reexec.ErrUnknownRole
	// ErrNotChild is returned by Segment and File in a process that was
	// not started by Start, or for an index the parent did not hand over.
	ErrNotChild = reexec.ErrNotChild
)

// Process is a child started by Start: Pid, Wait, Done, Alive, Signal,
// Kill, State, Stderr. Its methods may be called from any goroutine.
type Process = reexec.Process

// ExitError is how Wait reports a child that did not exit with status 0:
// role, pid, exit code or signal, and the tail of its stderr.
type ExitError = reexec.ExitError

// Register makes fn runnable as role in a child. Call it before [Main]
// (from an init function or at the top of main / TestMain). Registering a
// name twice panics.
func Register(role string, fn func(args []string) error) { reexec.Register(role, fn) }

// Main runs this process's role and exits, if it was started by Start;
// otherwise it returns at once. Call it first thing in main and TestMain.
//
// The child exits with status 0 when the role's function returns nil, 1
// (after printing the error on stderr) when it returns an error, and 2
// when the role is unknown or the parent died before the child could
// arm its parent-death signal.
func Main() { reexec.Main() }

// Role returns the role this process runs in, or "" if it was not started
// by Start.
func Role() string { return reexec.Role() }

// IsChild reports whether this process was started by Start.
func IsChild() bool { return reexec.IsChild() }

// File returns the i-th file the parent passed in Options.Files, in a
// child.
func File(i int) (*os.File, error) { return reexec.File(i) }

// Segment attaches the i-th segment the parent passed in
// Options.Segments, in a child: shm.OpenFile on the inherited descriptor
// of an anonymous segment, shm.Open on the path of a named one. Each call
// maps the segment again; the caller closes what it gets.
func Segment(i int) (*shm.Segment, error) {
	h, err := reexec.HandedSegment(i)
	if err != nil {
		return nil, err
	}
	if h.File == nil {
		return shm.Open(h.Path, nil)
	}
	s, err := shm.OpenFile(h.File)
	runtime.KeepAlive(h.File) // its finalizer would close the inherited descriptor
	return s, err
}

// Options configure Start. The zero value (or nil) means the defaults.
type Options struct {
	Args []string // the role's arguments
	Env  []string // extra environment, KEY=VALUE, on top of the parent's
	// Files are inherited as descriptors 3, 4, ... (see [File]).
	Files []*os.File
	// Segments are handed to the child (see [Segment]): anonymous ones by
	// descriptor, after Files; named ones by path.
	Segments []*shm.Segment
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
}

// Start runs role in a new process: the current binary, re-executed. The
// role must be registered in this binary (else ErrUnknownRole). Cancelling
// ctx (nil: never) terminates the child: SIGTERM, then SIGKILL after
// opts.Grace.
func Start(ctx context.Context, role string, opts *Options) (*Process, error) {
	if opts == nil {
		opts = &Options{}
	}
	ro := &reexec.Options{Args: opts.Args, Env: opts.Env, Files: opts.Files,
		Stdout: opts.Stdout, Stderr: opts.Stderr, Grace: opts.Grace}
	for i, s := range opts.Segments {
		f := s.File()
		if f == nil {
			return nil, fmt.Errorf("process: starting %q: segment %d is closed: %w", role, i, os.ErrClosed)
		}
		if strings.HasPrefix(s.Path(), "memfd:") {
			ro.Segments = append(ro.Segments, reexec.Segment{File: f})
		} else {
			ro.Segments = append(ro.Segments, reexec.Segment{Path: s.Path()})
		}
	}
	return reexec.Start(ctx, role, ro)
}
