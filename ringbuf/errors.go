package ringbuf

import (
	"errors"

	"github.com/mpipc/mpipc/internal/typeinfo"
)

// Errors of the queue, typed queue, joinable queue and pipe. Corrupt shared
// state is reported with shm.ErrCorrupt.
var (
	// ErrFull is returned by TryPut, and by PutTimeout when the queue stays
	// full for the whole timeout (Python's queue.Full).
	ErrFull = errors.New("ringbuf: queue full")
	// ErrEmpty is returned by TryGet, and by GetTimeout when the queue stays
	// empty for the whole timeout (Python's queue.Empty).
	ErrEmpty = errors.New("ringbuf: queue empty")
	// ErrClosed is returned by calls on a handle after its Close (a queue
	// handle, or a pipe end).
	ErrClosed = errors.New("ringbuf: closed")
	// ErrShutdown is returned by Put after the queue's Shutdown (by any
	// process), and by Get once a shut-down queue is drained (at once
	// after an immediate Shutdown): Python 3.13's queue.ShutDown.
	ErrShutdown = errors.New("ringbuf: queue shut down")
	// ErrTooLarge is returned by Put for a message longer than the queue's
	// maximum message size.
	ErrTooLarge = errors.New("ringbuf: message too large")
	// ErrShortBuffer is returned by a Get into a buffer smaller than the
	// message; the message stays in the queue.
	ErrShortBuffer = errors.New("ringbuf: buffer too small for message")
)

// Errors of the queue's parameters and of JoinableQueue.
var (
	// ErrInvalidParam is returned by Init and Create for a capacity above
	// MaxCapacity, or a maximum message size outside 0..MaxMsgLimit.
	ErrInvalidParam = errors.New("ringbuf: invalid queue parameters")
	// ErrTaskDone is returned by TaskDone when it is called more times
	// than items were taken from the queue (Python's ValueError from
	// task_done); the call changes nothing.
	ErrTaskDone = errors.New("ringbuf: task done more times than items taken")
	// ErrUnsupportedType is returned (wrapped) by the typed queue's
	// constructors for an element type another process cannot read; the
	// same value as value.ErrUnsupportedType.
	ErrUnsupportedType = typeinfo.ErrUnsupportedType
)
