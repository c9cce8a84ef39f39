package pool

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MapOptions configure Map and MapUnordered. The zero value (or nil)
// means the defaults.
type MapOptions struct {
	// ChunkSize is how many tasks travel to a worker in one message (at
	// most what fits in Options.MaxMsg). Default, as Python's: the tasks
	// divided by four times the workers, rounded up.
	ChunkSize int
}

// batch is one call's tasks, cut into chunks.
type batch struct {
	fn      uint32
	n       int   // tasks
	nchunks int   // chunks
	chunk   int   // tasks per chunk, when bounds is nil
	bounds  []int // chunk c is tasks bounds[c]..bounds[c+1]
	job     job
	next    int // next chunk to dispatch, under the pool's mu

	cancelled atomic.Bool
	mu        sync.Mutex
	left      int // tasks not finished
	errs      Errors
	done      chan struct{}
	unordered bool
	finished  [][2]int      // spans of tasks finished and not yet yielded, for MapUnordered
	note      chan struct{} // a span was finished, for MapUnordered
}

// job is a batch's typed half.
type job interface {
	// encode writes tasks lo..hi-1 into dst and returns the bytes used.
	encode(lo, hi int, dst []byte) int
	// decode reads the results of tasks lo..lo+fit-1 from src and
	// records in b (b.mu held) each task whose function failed.
	decode(lo, fit int, src []byte, b *batch) error
}

type typedJob[T, R any] struct {
	f       *Func[T, R]
	tasks   []T
	results []R
}

func (j *typedJob[T, R]) encode(lo, hi int, dst []byte) int {
	used := 0
	for i := lo; i < hi; i++ {
		used += putItem(dst[used:], j.f.tsize, &j.tasks[i]) // the chunk was sized to fit
	}
	return used
}

func (j *typedJob[T, R]) decode(lo, fit int, src []byte, b *batch) error {
	for i := lo; i < lo+fit; i++ {
		n, isErr, text, err := getItem(src, j.f.rsize, &j.results[i])
		if err != nil {
			return err
		}
		if isErr {
			b.taskFailed(i, remoteError(text))
		}
		src = src[n:]
	}
	return nil
}

// newBatch cuts tasks into chunks that fit in a message.
func newBatch[T, R any](p *Pool, f *Func[T, R], tasks []T, chunk int, unordered bool) (*batch, []R, error) {
	b, j := new(batch), &typedJob[T, R]{f: f, tasks: tasks, results: make([]R, len(tasks))}
	if err := initBatch(b, j, p, chunk, unordered); err != nil {
		return nil, nil, err
	}
	return b, j.results, nil
}

// initBatch sets up b for j's tasks.
func initBatch[T, R any](b *batch, j *typedJob[T, R], p *Pool, chunk int, unordered bool) error {
	f, tasks := j.f, j.tasks
	n := len(tasks)
	if chunk <= 0 {
		chunk = (n + 4*p.n - 1) / (4 * p.n)
	}
	chunk = max(chunk, 1)
	room := p.opts.MaxMsg - msgHeader
	if f.rsize >= 0 {
		per := room / (itemHeader + f.rsize)
		if per < 1 {
			return fmt.Errorf("pool: %s: a result of %d bytes: %w", f.name, f.rsize, ErrTooLarge)
		}
		chunk = min(chunk, per)
	}
	b.fn, b.n, b.done = f.id, n, make(chan struct{})
	if f.tsize >= 0 {
		per := room / (itemHeader + f.tsize)
		if per < 1 {
			return fmt.Errorf("pool: %s: a task of %d bytes: %w", f.name, f.tsize, ErrTooLarge)
		}
		b.chunk = min(chunk, per)
		b.nchunks = (n + b.chunk - 1) / b.chunk
	} else {
		b.bounds = append(b.bounds, 0)
		used, k := 0, 0
		for i := range tasks {
			sz := itemHeader + len(*(*[]byte)(unsafe.Pointer(&tasks[i])))
			if sz > room {
				return fmt.Errorf("pool: %s: task %d of %d bytes: %w", f.name, i, sz-itemHeader, ErrTooLarge)
			}
			if k == chunk || used+sz > room {
				b.bounds = append(b.bounds, i)
				used, k = 0, 0
			}
			used += sz
			k++
		}
		if n > 0 {
			b.bounds = append(b.bounds, n)
		}
		b.nchunks = len(b.bounds) - 1
	}
	b.left = n
	b.job = j
	if unordered {
		b.unordered, b.note = true, make(chan struct{}, 1)
	}
	if b.nchunks == 0 {
		close(b.done)
	}
	return nil
}

// span returns chunk c's tasks.
func (b *batch) span(c int) (lo, hi int) {
	if b.bounds != nil {
		return b.bounds[c], b.bounds[c+1]
	}
	lo = c * b.chunk
	return lo, min(lo+b.chunk, b.n)
}

// deliver records the results of the tasks lo..hi-1: n tasks, of which
// the first fit have their result (or error) in body. It returns the span
// of tasks whose results did not fit in the message, to run again.
func (b *batch) deliver(lo, hi int, body []byte, n, fit int) (restLo, restHi int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case n != hi-lo || fit > n:
		b.failLocked(lo, hi, func(int) error { return errCorrupt("result message for another chunk") })
		return 0, 0
	case fit == 0: // the first result alone does not fit in a message
		b.failLocked(lo, lo+1, func(int) error { return ErrTooLarge })
		return lo + 1, hi
	}
	if err := b.job.decode(lo, fit, body, b); err != nil {
		b.failLocked(lo, hi, func(int) error { return err })
		return 0, 0
	}
	b.finishLocked(lo, lo+fit)
	return lo + fit, hi
}

// taskFailed records that task i's function failed; with b.mu held.
func (b *batch) taskFailed(i int, err error) {
	b.errs = append(b.errs, &TaskError{Index: i, Err: err})
}

// fail fails every task of lo..hi-1 with err(i).
func (b *batch) fail(lo, hi int, err func(i int) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failLocked(lo, hi, err)
}

func (b *batch) failLocked(lo, hi int, err func(int) error) {
	for i := lo; i < hi; i++ {
		b.errs = append(b.errs, &TaskError{Index: i, Err: err(i)})
	}
	b.finishLocked(lo, hi)
}

func (b *batch) finishLocked(lo, hi int) {
	if lo >= hi {
		return
	}
	if b.unordered {
		b.finished = append(b.finished, [2]int{lo, hi})
		select {
		case b.note <- struct{}{}:
		default:
		}
	}
	if b.left -= hi - lo; b.left == 0 {
		close(b.done)
	}
}

// err returns the tasks' failures in task order, or nil.
func (b *batch) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) == 0 {
		return nil
	}
	slices.SortFunc(b.errs, func(x, y *TaskError) int { return x.Index - y.Index })
	return b.errs
}

// Map runs f on every task in the pool's workers and returns the results
// in task order (Python's Pool.map). Tasks travel in chunks (see
// MapOptions). If tasks failed, it returns every result that was
// computed and an Errors listing the failed tasks: the function's error,
// *WorkerDiedError, ErrTooLarge, ErrClosed. If ctx (nil: never) is done
// first, Map stops dispatching the call's chunks at once and returns
// ctx.Err(); chunks already in workers run to the end and their results
// are dropped.
func Map[T, R any](ctx context.Context, p *Pool, f *Func[T, R], tasks []T, opts *MapOptions) ([]R, error) {
	b, results, err := start(p, f, tasks, opts, false)
	if err != nil {
		return nil, err
	}
	if ctx != nil {
		select {
		case <-b.done:
		case <-ctx.Done():
			b.cancelled.Store(true)
			return nil, ctx.Err()
		}
	}
	<-b.done
	return results, b.err()
}

func start[T, R any](p *Pool, f *Func[T, R], tasks []T, opts *MapOptions, unordered bool) (*batch, []R, error) {
	chunk := 0
	if opts != nil {
		chunk = opts.ChunkSize
	}
	b, results, err := newBatch(p, f, tasks, chunk, unordered)
	if err != nil {
		return nil, nil, err
	}
	if b.nchunks > 0 {
		if err := p.submit(b); err != nil {
			return nil, nil, err
		}
	}
	return b, results, nil
}

// Result is one task's outcome from MapUnordered.
type Result[R any] struct {
	Index int   // the task's index in tasks
	Value R     // its result, if Err is nil
	Err   error // why it failed: as for Map, or ctx.Err()
}

// MapUnordered runs f on every task and yields each task's result as its
// chunk completes, in no particular order (Python's imap_unordered).
// Every task is yielded exactly once: with its value, or with its error
// (as for Map). If ctx is done, the tasks not yet finished are yielded at
// once with ctx.Err(), and their chunks are no longer dispatched; so they
// are if the loop stops early. An error before any task runs (a closed
// pool, a task too large) is yielded once with Index -1.
func MapUnordered[T, R any](ctx context.Context, p *Pool, f *Func[T, R], tasks []T, opts *MapOptions) iter.Seq[Result[R]] {
	return func(yield func(Result[R]) bool) {
		b, results, err := start(p, f, tasks, opts, true)
		if err != nil {
			yield(Result[R]{Index: -1, Err: err})
			return
		}
		defer b.cancelled.Store(true)
		var cdone <-chan struct{}
		if ctx != nil {
			cdone = ctx.Done()
		}
		yielded := make([]bool, b.n)
		var spans [][2]int
		for left := b.n; left > 0; {
			select {
			case <-b.note:
			case <-cdone:
				b.cancelled.Store(true)
				for i, y := range yielded {
					if !y && !yield(Result[R]{Index: i, Err: &TaskError{Index: i, Err: ctx.Err()}}) {
						return
					}
				}
				return
			}
			b.mu.Lock()
			spans = append(spans[:0], b.finished...)
			b.finished = b.finished[:0]
			var errs map[int]error
			for _, e := range b.errs {
				if !yielded[e.Index] {
					if errs == nil {
						errs = map[int]error{}
					}
					errs[e.Index] = e
				}
			}
			b.mu.Unlock()
			for _, sp := range spans {
				for i := sp[0]; i < sp[1]; i++ {
					yielded[i] = true
					left--
					r := Result[R]{Index: i}
					if e := errs[i]; e != nil {
						r.Err = e
					} else {
						r.Value = results[i]
					}
					if !yield(r) {
						return
					}
				}
			}
		}
	}
}

// Future is the pending result of one task (Python's AsyncResult).
type Future[R any] struct {
	b       *batch
	results []R
}

// Submit sends one task to the pool and returns its future at once
// (Python's apply_async).
func Submit[T, R any](p *Pool, f *Func[T, R], task T) (*Future[R], error) {
	s := new(submission[T, R]) // one allocation for the call's bookkeeping
	s.task[0] = task
	s.job = typedJob[T, R]{f: f, tasks: s.task[:], results: s.result[:]}
	if err := initBatch(&s.b, &s.job, p, 1, false); err != nil {
		return nil, err
	}
	if err := p.submit(&s.b); err != nil {
		return nil, err
	}
	s.fu = Future[R]{b: &s.b, results: s.result[:]}
	return &s.fu, nil
}

// submission is everything one Submit needs, allocated at once.
type submission[T, R any] struct {
	b      batch
	job    typedJob[T, R]
	task   [1]T
	result [1]R
	fu     Future[R]
}

// Done is closed when the result is ready.
func (fu *Future[R]) Done() <-chan struct{} { return fu.b.done }

// Get waits for the result until ctx (nil: never) is done. The task's
// failure is returned as a *TaskError (Index 0) wrapping the function's
// error, *WorkerDiedError, or ErrClosed. A cancelled ctx returns
// ctx.Err() and leaves the task running; Get may be called again.
func (fu *Future[R]) Get(ctx context.Context) (R, error) {
	if ctx != nil {
		select {
		case <-fu.b.done:
		case <-ctx.Done():
			var zero R
			return zero, ctx.Err()
		}
	}
	<-fu.b.done
	if err := fu.b.err(); err != nil {
		var zero R
		return zero, err.(Errors)[0]
	}
	return fu.results[0], nil
}

// Apply runs one task and waits for its result (Python's apply).
func Apply[T, R any](ctx context.Context, p *Pool, f *Func[T, R], task T) (R, error) {
	fu, err := Submit(p, f, task)
	if err != nil {
		var zero R
		return zero, err
	}
	return fu.Get(ctx)
}
