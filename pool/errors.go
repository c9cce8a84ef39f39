package pool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mpipc/mpipc/shm"
)

// Errors of pool.
var (
	// ErrWorkerDied is returned (in a *WorkerDiedError) for a task that
	// was running in a worker when the worker died, after
	// Options.Retries further attempts died too.
	ErrWorkerDied = errors.New("pool: worker died running the task")
	// ErrClosed is returned for work submitted after Close or Terminate,
	// and for tasks that Terminate cut short.
	ErrClosed = errors.New("pool: closed")
	// ErrTooLarge is returned for a task that does not fit in a message
	// (Options.MaxMsg) and for a result that did not fit in the result
	// message of its chunk (use a smaller chunk size).
	ErrTooLarge = errors.New("pool: task or result too large for a message")
	// ErrInvalid is returned by New for a number of workers or Options
	// out of range.
	ErrInvalid = errors.New("pool: invalid parameters")
	// ErrBroken is returned for the work of a pool whose workers keep
	// dying at start-up, before they finish a task: the pool gave up.
	ErrBroken = errors.New("pool: workers keep dying at start-up")
)

func errCorrupt(what string) error { return fmt.Errorf("pool: %s: %w", what, shm.ErrCorrupt) }

// TaskError is the failure of one task.
type TaskError struct {
	Index int   // the task's index in the call's tasks (0 for Submit)
	Err   error // what the function returned, or why it did not run
}

func (e *TaskError) Error() string { return fmt.Sprintf("pool: task %d: %v", e.Index, e.Err) }
func (e *TaskError) Unwrap() error { return e.Err }

// WorkerDiedError says which worker died under a task, and how.
type WorkerDiedError struct {
	Pid      int
	Attempts int   // how many times the task was tried
	Exit     error // the worker's exit (a *process.ExitError: status and stderr tail)
}

func (e *WorkerDiedError) Error() string {
	return fmt.Sprintf("pool: worker (pid %d) died running the task (attempt %d): %v", e.Pid, e.Attempts, e.Exit)
}

// Is makes errors.Is(err, ErrWorkerDied) true.
func (e *WorkerDiedError) Is(target error) bool { return target == ErrWorkerDied }

// Unwrap returns the worker's exit error.
func (e *WorkerDiedError) Unwrap() error { return e.Exit }

// Errors is what Map returns when tasks failed: one *TaskError per failed
// task, in task order. errors.Is and errors.As look into every one.
type Errors []*TaskError

func (es Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool: %d tasks failed", len(es))
	for i, e := range es {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; %v", e)
	}
	return b.String()
}

// Unwrap returns the task errors.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// remoteError is an error a function returned in a worker: its text.
type remoteError string

func (e remoteError) Error() string { return string(e) }
