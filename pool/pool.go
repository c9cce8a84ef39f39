package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/mpipc/mpipc/process"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
)

// Defaults and limits of Options.
const (
	DefaultMaxMsg = 4032 // bytes of a message: slots of 4 KiB
	DefaultDepth  = 16   // chunks queued to a worker
	MaxWorkers    = 32   // two queues per worker in one segment's directory
	// deadStartLimit is how many workers of one slot may die in a row
	// without returning a single result before the pool gives up
	// (ErrBroken).
	deadStartLimit = 10
)

// msgHeader is the header of every message: task messages carry (function
// id, tag, task count, 0), result messages (tag, result count, results
// that fit, 0), little-endian uint32s.
const msgHeader = 16

// Options configure New. The zero value (or nil) means the defaults.
type Options struct {
	// MaxMsg is the largest message, in bytes, between the parent and a
	// worker: a chunk of tasks, or its results. Default DefaultMaxMsg.
	MaxMsg int
	// Depth is how many chunks the parent queues to each worker (a power
	// of two, at least 2). Default DefaultDepth.
	Depth int
	// Retries is how many more times a task that was running in a worker
	// that died is tried, in a new worker. 0 (the default): never; the
	// task fails at once with ErrWorkerDied.
	Retries int
	// MaxTasksPerChild is how many tasks (chunks of a Map, calls of
	// Submit, as in Python) a worker runs before it exits and is
	// replaced by a new one. 0 (the default): no limit.
	MaxTasksPerChild int
	// Stdout and Stderr receive the workers' output, one write at a
	// time (they may be the same writer). Default: the parent's.
	Stdout, Stderr io.Writer
}

// Pool is a set of worker processes that run registered functions
// ([NewFunc]) on tasks sent through shared-memory queues. Create one with
// [New]; its methods and the functions that use it (Map, MapUnordered,
// Submit, Apply) may be called from any goroutine.
type Pool struct {
	n    int
	opts Options
	seg  *shm.Segment

	ctx    context.Context // cancelled by Terminate
	cancel context.CancelFunc

	mu         sync.Mutex
	batches    []*batch // with chunks not yet dispatched, oldest first
	retry      []flight // chunks to dispatch again
	wake       chan struct{}
	closed     bool
	terminated bool
	broken     error

	slots   []*slot
	started int // worker processes started, under mu
	wg      sync.WaitGroup
	once    sync.Once
	err     error // of the shutdown, for Wait
}

// flight is a chunk dispatched to a worker.
type flight struct {
	b       *batch
	lo, hi  int    // its tasks
	attempt int    // attempts before this one
	tag     uint32 // the slot's sequence number of the dispatch
}

const workerRole = "mpipc-pool-worker"

func init() { process.Register(workerRole, workerMain) }

// New starts a pool of n worker processes (1..MaxWorkers). The program
// must call process.Main first thing in main (and TestMain): the workers
// are the program itself, re-executed. Cancelling ctx (nil: never)
// terminates the pool, as Terminate.
func New(ctx context.Context, n int, opts *Options) (*Pool, error) {
	if n < 1 || n > MaxWorkers {
		return nil, fmt.Errorf("pool: %d workers, want 1..%d: %w", n, MaxWorkers, ErrInvalid)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxMsg == 0 {
		o.MaxMsg = DefaultMaxMsg
	}
	if o.Depth == 0 {
		o.Depth = DefaultDepth
	}
	if o.MaxMsg < msgHeader+2*itemHeader || o.Depth < 2 || o.Depth&(o.Depth-1) != 0 || o.Retries < 0 || o.MaxTasksPerChild < 0 {
		return nil, fmt.Errorf("pool: options %+v: %w", o, ErrInvalid)
	}
	tqSize, rqSize := ringbuf.SizeOf(o.Depth, o.MaxMsg), ringbuf.SizeOf(2*o.Depth, o.MaxMsg)
	if tqSize < 0 || rqSize < 0 {
		return nil, fmt.Errorf("pool: options %+v: %w", o, ErrInvalid)
	}
	seg, err := shm.CreateAnonymous(int64(64<<10 + n*(tqSize+rqSize+1024)))
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var outMu sync.Mutex // the workers' output is copied by one goroutine per stream and worker
	if o.Stdout != nil {
		o.Stdout = &lockedWriter{mu: &outMu, w: o.Stdout}
	}
	if o.Stderr != nil {
		o.Stderr = &lockedWriter{mu: &outMu, w: o.Stderr}
	}
	p := &Pool{n: n, opts: o, seg: seg, wake: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for i := range n {
		s := &slot{p: p, i: i, in: make([]byte, o.MaxMsg), out: make([]byte, o.MaxMsg)}
		if s.tq, err = ringbuf.Create(seg, "t"+strconv.Itoa(i), o.Depth, o.MaxMsg, nil); err == nil {
			s.rq, err = ringbuf.Create(seg, "r"+strconv.Itoa(i), 2*o.Depth, o.MaxMsg, nil)
		}
		if err == nil {
			err = s.start()
		}
		if err != nil {
			p.cancel()
			for _, s := range p.slots {
				s.proc.Kill()
				s.proc.Wait()
			}
			seg.Close()
			return nil, fmt.Errorf("pool: %w", err)
		}
		p.slots = append(p.slots, s)
	}
	p.wg.Add(n)
	for _, s := range p.slots {
		go s.loop()
	}
	go func() { // Terminate when ctx ends
		<-p.ctx.Done()
		p.Terminate()
	}()
	return p, nil
}

// Workers returns the number of worker processes.
func (p *Pool) Workers() int { return p.n }

// Pids returns the pids of the current workers (0 for a slot between
// workers).
func (p *Pool) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, len(p.slots))
	for i, s := range p.slots {
		if s.pid != 0 {
			out[i] = s.pid
		}
	}
	return out
}

// Started returns how many worker processes the pool has started: Workers
// at first, one more for each worker replaced (after a death, or after
// MaxTasksPerChild).
func (p *Pool) Started() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// submit queues b's chunks for dispatch.
func (p *Pool) submit(b *batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.broken != nil:
		return p.broken
	case p.closed:
		return ErrClosed
	}
	p.batches = append(p.batches, b)
	p.broadcastLocked()
	return nil
}

func (p *Pool) broadcastLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// next takes the next chunk to dispatch, retries first; with p.mu held.
func (p *Pool) nextLocked() (flight, bool) {
	for len(p.retry) > 0 {
		f := p.retry[len(p.retry)-1]
		p.retry = p.retry[:len(p.retry)-1]
		if !f.b.cancelled.Load() {
			return f, true
		}
	}
	for len(p.batches) > 0 {
		b := p.batches[0]
		if b.cancelled.Load() || b.next >= b.nchunks {
			p.batches[0] = nil
			p.batches = p.batches[1:]
			continue
		}
		lo, hi := b.span(b.next)
		b.next++
		return flight{b: b, lo: lo, hi: hi}, true
	}
	return flight{}, false
}

func (p *Pool) hasWorkLocked() bool {
	for _, f := range p.retry {
		if !f.b.cancelled.Load() {
			return true
		}
	}
	for _, b := range p.batches {
		if !b.cancelled.Load() && b.next < b.nchunks {
			return true
		}
	}
	return false
}

// requeue puts a chunk back for dispatch.
func (p *Pool) requeue(f flight) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminated || p.broken != nil {
		err := p.broken
		if err == nil {
			err = ErrClosed
		}
		f.b.fail(f.lo, f.hi, func(int) error { return err })
		return
	}
	p.retry = append(p.retry, flight{b: f.b, lo: f.lo, hi: f.hi, attempt: f.attempt})
	p.broadcastLocked()
}

// failPendingLocked fails every chunk not yet dispatched with err.
func (p *Pool) failPendingLocked(err error) {
	for _, f := range p.retry {
		f.b.fail(f.lo, f.hi, func(int) error { return err })
	}
	p.retry = nil
	for _, b := range p.batches {
		for ; b.next < b.nchunks; b.next++ {
			lo, hi := b.span(b.next)
			b.fail(lo, hi, func(int) error { return err })
		}
	}
	p.batches = nil
}

// Close stops the pool from taking new work (Python's close): the work
// already submitted is done, then the workers exit. Wait waits for that.
// Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.broadcastLocked()
	p.mu.Unlock()
	return nil
}

// Terminate kills the workers at once (SIGKILL, as Python's terminate):
// tasks not finished fail with ErrClosed. It waits for the workers to be
// reaped and releases the pool's segment.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	p.closed, p.terminated = true, true
	p.failPendingLocked(ErrClosed)
	p.broadcastLocked()
	p.mu.Unlock()
	p.cancel()
	return p.Wait()
}

// Wait waits, after Close or Terminate, for every worker to exit, and
// releases the pool's segment (Python's join). It returns the error of
// releasing the segment, if any.
func (p *Pool) Wait() error {
	p.wg.Wait()
	p.once.Do(func() {
		p.cancel()
		p.err = p.seg.Close()
	})
	return p.err
}

// slot is one worker place: its queues, its current process and the
// chunks dispatched to it. Only the slot's goroutine touches it, except
// pid (under p.mu).
type slot struct {
	p      *Pool
	i      int
	tq, rq *ringbuf.Queue
	proc   *process.Process
	pid    int // under p.mu
	wctx   context.Context
	fl     []flight // dispatched, oldest first
	tag    uint32
	budget int // chunks the current worker may still take; -1: no limit
	got    int // results from the current worker
	dead   int // workers in a row that died without a result
	in     []byte
	out    []byte
}

func (s *slot) start() error {
	p := s.p
	proc, err := process.Start(p.ctx, workerRole, &process.Options{
		Args:     []string{strconv.Itoa(s.i), strconv.Itoa(p.opts.MaxTasksPerChild)},
		Segments: []*shm.Segment{p.seg},
		Stdout:   p.opts.Stdout,
		Stderr:   p.opts.Stderr,
		Grace:    100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	wctx, wcancel := context.WithCancel(p.ctx)
	go func() { <-proc.Done(); wcancel() }()
	s.proc, s.wctx, s.got = proc, wctx, 0
	s.budget = -1
	if p.opts.MaxTasksPerChild > 0 {
		s.budget = p.opts.MaxTasksPerChild
	}
	p.mu.Lock()
	s.pid = proc.Pid()
	p.started++
	p.mu.Unlock()
	return nil
}

func (s *slot) loop() {
	p := s.p
	defer p.wg.Done()
	for {
		if s.proc == nil {
			if p.ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			idle := p.broken != nil || p.closed && !p.hasWorkLocked()
			p.mu.Unlock()
			if idle { // nothing more to do: a broken pool takes no work
				s.tq.Shutdown(false)
				return
			}
			if err := s.start(); err != nil {
				s.breakPool(err)
				return
			}
		}
		s.fill()
		if len(s.fl) == 0 {
			if s.budget == 0 { // the worker exits by itself
				select {
				case <-s.proc.Done():
					s.died()
				case <-p.ctx.Done():
					s.terminate()
					return
				}
				continue
			}
			p.mu.Lock()
			work, closed, wake := p.hasWorkLocked(), p.closed, p.wake
			p.mu.Unlock()
			if work {
				continue
			}
			if closed {
				s.shutdown()
				return
			}
			select {
			case <-wake:
			case <-s.proc.Done():
				s.died()
			case <-p.ctx.Done():
				s.terminate()
				return
			}
			continue
		}
		n, err := s.rq.GetInto(s.wctx, s.in)
		switch {
		case err == nil:
			s.result(s.in[:n])
		case p.ctx.Err() != nil:
			s.terminate()
			return
		case !s.proc.Alive():
			s.died()
		default: // the queue is corrupt: replace the worker
			s.proc.Kill()
			<-s.proc.Done()
			s.died()
		}
	}
}

// fill dispatches chunks while the worker's queue has room.
func (s *slot) fill() {
	p := s.p
	for len(s.fl) < p.opts.Depth && s.budget != 0 {
		p.mu.Lock()
		f, ok := p.nextLocked()
		p.mu.Unlock()
		if !ok {
			return
		}
		s.tag++
		f.tag = s.tag
		lo, hi := f.lo, f.hi
		binary.LittleEndian.PutUint32(s.out[0:], f.b.fn)
		binary.LittleEndian.PutUint32(s.out[4:], f.tag)
		binary.LittleEndian.PutUint32(s.out[8:], uint32(hi-lo))
		binary.LittleEndian.PutUint32(s.out[12:], 0)
		n := f.b.job.encode(lo, hi, s.out[msgHeader:])
		if err := s.tq.TryPut(s.out[:msgHeader+n]); err != nil {
			// Full only if a dead worker's claim still holds a slot.
			p.requeue(f)
			return
		}
		s.fl = append(s.fl, f)
		if s.budget > 0 {
			s.budget--
		}
	}
}

// take removes the flight with tag from s.fl.
func (s *slot) take(tag uint32) (flight, bool) {
	for i, f := range s.fl {
		if f.tag == tag {
			s.fl = append(s.fl[:i], s.fl[i+1:]...)
			return f, true
		}
	}
	return flight{}, false
}

// result delivers one result message.
func (s *slot) result(msg []byte) {
	if len(msg) < msgHeader {
		return
	}
	tag := binary.LittleEndian.Uint32(msg[0:])
	n := int(binary.LittleEndian.Uint32(msg[4:]))
	fit := int(binary.LittleEndian.Uint32(msg[8:]))
	f, ok := s.take(tag)
	if !ok {
		return // a stale answer to a chunk already given up
	}
	s.got++
	s.dead = 0
	if lo, hi := f.b.deliver(f.lo, f.hi, msg[msgHeader:], n, fit); lo < hi {
		s.p.requeue(flight{b: f.b, lo: lo, hi: hi, attempt: f.attempt})
	}
}

// died handles the exit of the slot's worker: it collects what the worker
// answered, takes back what it never took, and retries or fails what it
// took and did not answer.
func (s *slot) died() {
	p := s.p
	exit := s.proc.Wait()
	pid := s.proc.Pid()
	for { // answers it gave before it died
		n, err := s.rq.TryGetInto(s.in)
		if err != nil {
			break
		}
		s.result(s.in[:n])
	}
	for { // chunks it never took: not an attempt
		n, err := s.tq.TryGetInto(s.out)
		if err != nil {
			break
		}
		if n < msgHeader {
			continue
		}
		if f, ok := s.take(binary.LittleEndian.Uint32(s.out[4:])); ok {
			p.requeue(f)
		}
	}
	if len(s.fl) > 0 || exit != nil {
		if s.got == 0 {
			s.dead++
		}
	}
	for _, f := range s.fl { // taken and not answered: in flight when it died
		f.attempt++
		if f.attempt <= p.opts.Retries {
			p.requeue(f)
			continue
		}
		e := &WorkerDiedError{Pid: pid, Attempts: f.attempt, Exit: exit}
		f.b.fail(f.lo, f.hi, func(int) error { return e })
	}
	s.fl = s.fl[:0]
	s.proc = nil
	p.mu.Lock()
	s.pid = 0
	p.mu.Unlock()
	if s.dead >= deadStartLimit {
		s.breakPool(fmt.Errorf("%w: %d workers in a row died without a result; the last: %v", ErrBroken, s.dead, exit))
	}
}

// breakPool gives up: every pending chunk fails with err, and so does
// every later submission.
func (s *slot) breakPool(err error) {
	p := s.p
	p.mu.Lock()
	if p.broken == nil {
		p.broken = err
	}
	p.failPendingLocked(p.broken)
	p.mu.Unlock()
	for _, f := range s.fl {
		f.b.fail(f.lo, f.hi, func(int) error { return err })
	}
	s.fl = nil
}

// terminate kills the worker and fails what it had.
func (s *slot) terminate() {
	if s.proc != nil {
		s.proc.Kill()
		<-s.proc.Done()
	}
	for _, f := range s.fl {
		f.b.fail(f.lo, f.hi, func(int) error { return ErrClosed })
	}
	s.fl = nil
}

// shutdown lets the worker exit (its queue shut down: its next Get fails
// with ringbuf.ErrShutdown once the queue is drained) and waits for it.
func (s *slot) shutdown() {
	s.tq.Shutdown(false)
	select {
	case <-s.proc.Done():
	case <-s.p.ctx.Done():
		s.proc.Kill()
		<-s.proc.Done()
	}
}

// workerMain is the worker process: args are the slot index and the
// task limit.
func workerMain(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("pool worker: %d arguments, want 2", len(args))
	}
	slot, err1 := strconv.Atoi(args[0])
	limit, err2 := strconv.Atoi(args[1])
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("pool worker: %w", err)
	}
	seg, err := process.Segment(0)
	if err != nil {
		return err
	}
	defer seg.Close()
	tq, err := ringbuf.Open(seg, "t"+strconv.Itoa(slot), nil)
	if err != nil {
		return err
	}
	rq, err := ringbuf.Open(seg, "r"+strconv.Itoa(slot), nil)
	if err != nil {
		return err
	}
	in, out := make([]byte, tq.MaxMsgSize()), make([]byte, rq.MaxMsgSize())
	if len(in) < msgHeader || len(out) < msgHeader {
		return errCorrupt("message size below the header")
	}
	for done := 0; limit == 0 || done < limit; done++ {
		n, err := tq.GetInto(context.Background(), in)
		if errors.Is(err, ringbuf.ErrShutdown) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < msgHeader {
			return errCorrupt("task message shorter than its header")
		}
		id := binary.LittleEndian.Uint32(in[0:])
		count := int(binary.LittleEndian.Uint32(in[8:]))
		funcsMu.Lock()
		f := funcs[id]
		funcsMu.Unlock()
		if f == nil {
			return fmt.Errorf("pool worker: no function with id %#x in this binary", id)
		}
		used, fit, err := f.run(in[msgHeader:n], count, out[msgHeader:])
		if err != nil {
			return err
		}
		copy(out[0:4], in[4:8]) // the tag
		binary.LittleEndian.PutUint32(out[4:], uint32(count))
		binary.LittleEndian.PutUint32(out[8:], uint32(fit))
		binary.LittleEndian.PutUint32(out[12:], 0)
		if err := rq.Put(context.Background(), out[:msgHeader+used]); err != nil {
			return err
		}
	}
	return nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
