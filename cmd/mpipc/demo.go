package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/process"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The demo: a parent and N worker processes (this binary, re-executed in
// demoRole) share one segment holding
//
//	"tasks"  a JoinableQueue of task numbers (8-byte messages); 0 marks the
//	         end of a phase, one marker per worker
//	"total"  a Value[int64]: the sum of all results
//	"lock"   a Lock guarding the board
//	"phase"  a Barrier of N parties: the workers meet there between phases
//	"board"  raw bytes: per worker the tasks done, the sum of its results
//	         and its tasks in each phase (int64s)
//
// Each worker takes tasks from the queue, works on one (squares it, after
// -delay), adds the result to the total (Value.Update, under the Value's
// lock), records it on the board under the Lock and calls TaskDone.
// At a phase marker it waits for the other workers (meet) before it goes
// on. The parent puts each phase's tasks, Joins the queue, and at the end
// checks total == Σ t² and prints what each worker did.
const (
	boardWorkers = 0 // per worker: done, sum, then one count per phase
	demoPhases   = 2
	workerWords  = 2 + demoPhases
	maxDemoProcs = 64
)

func workerOff(i, word int) int { return boardWorkers + 8*(workerWords*i+word) }

func boardSize(workers int) int64 { return int64(workerOff(workers, 0)) }

func i64(mem []byte, off int) *int64 { return (*int64)(unsafe.Pointer(&mem[off])) }

func runDemo(c *cli, args []string) int {
	fs := c.flags("demo")
	workers := fs.Int("workers", 3, "worker processes")
	tasks := fs.Int("tasks", 200, "tasks to hand out, split over the phases")
	delay := fs.Duration("delay", time.Millisecond, "time each task takes (to watch it, or to interrupt it)")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		return c.usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *workers < 1 || *workers > maxDemoProcs {
		return c.usageErr(fs, "-workers must be in 1..%d, not %d", maxDemoProcs, *workers)
	}
	if *tasks < 0 {
		return c.usageErr(fs, "-tasks must not be negative")
	}

	name := fmt.Sprintf("mpipc-demo-%d", os.Getpid())
	seg, err := shm.Create(name, nil)
	if err != nil {
		return c.fail("demo: creating segment %s in %s: %v", name, shm.DefaultDir, err)
	}
	path := seg.Path()
	defer func() {
		seg.Close()
		if err := shm.Remove(name, nil); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(c.stderr, "mpipc: demo: removing %s: %v (remove it with 'mpipc rm %s')\n", path, err, name)
		}
	}()

	// Remove the segment on SIGINT/SIGTERM too: a signal cancels ctx, which
	// stops the parent wherever it waits.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	q, err := ringbuf.CreateJoinable(seg, "tasks", 64, 8, nil)
	if err != nil {
		return c.fail("demo: %v", err)
	}
	total, err := value.Create[int64](seg, "total", 0, nil)
	if err != nil {
		return c.fail("demo: %v", err)
	}
	if _, err := lock.Create(seg, "lock", nil); err != nil {
		return c.fail("demo: %v", err)
	}
	b, err := barrier.Create(seg, "phase", *workers, nil)
	if err != nil {
		return c.fail("demo: %v", err)
	}
	b.Close() // the parent does not meet the workers there
	if _, err := seg.Alloc(shm.Spec{Name: "board", Kind: shm.KindBytes, KindVersion: 1, Size: boardSize(*workers)}, func([]byte) error { return nil }); err != nil {
		return c.fail("demo: creating the board in %s: %v", path, err)
	}
	fmt.Fprintf(c.stdout, "segment %s: %d workers, %d tasks in %d phases\n", path, *workers, *tasks, demoPhases)

	// Workers write their diagnostics into one stream: serialize them, since
	// each worker's output is copied from its own goroutine when the
	// stream is not a file.
	workerOut := &lockedWriter{w: c.stderr}
	wctx, killAll := context.WithCancel(context.Background())
	defer killAll() // on every early return; a no-op for exited workers
	children := make([]*process.Process, *workers)
	exited := make(chan int, *workers)
	for i := range children {
		p, err := process.Start(wctx, demoRole, &process.Options{
			Args:   []string{path, strconv.Itoa(i), strconv.Itoa(*workers), strconv.Itoa(*tasks), delay.String()},
			Stdout: workerOut, Stderr: workerOut,
			Grace: time.Millisecond,
		})
		if err != nil {
			return c.fail("demo: starting worker %d: %v", i, err)
		}
		children[i] = p
		go func() { <-p.Done(); exited <- i }()
	}
	// A worker that fails before the end stops the demo: cancel ctx.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		for range children {
			i := <-exited
			if err := children[i].Wait(); err != nil {
				cancel(fmt.Errorf("worker %d: %v", i, err))
				return
			}
		}
	}()
	interrupted := func() int {
		killAll()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return c.fail("demo: %v; segment %s removed", cause, path)
		}
		fmt.Fprintf(c.stderr, "mpipc: demo: interrupted: workers stopped, segment %s removed\n", path)
		return exitFail
	}

	var msg [8]byte
	next := int64(1)
	for phase := 1; phase <= demoPhases; phase++ {
		last := int64(*tasks) * int64(phase) / demoPhases
		for ; next <= last; next++ {
			binary.LittleEndian.PutUint64(msg[:], uint64(next))
			if err := q.Put(ctx, msg[:]); err != nil {
				return interrupted()
			}
		}
		binary.LittleEndian.PutUint64(msg[:], 0) // one end-of-phase marker per worker
		for range *workers {
			if err := q.Put(ctx, msg[:]); err != nil {
				return interrupted()
			}
		}
		if err := q.Join(ctx); err != nil {
			return interrupted()
		}
		fmt.Fprintf(c.stdout, "phase %d: tasks up to %d done (the queue joined)\n", phase, last)
	}
	if err := q.Close(); err != nil { // workers' Gets now end with ErrClosed
		return c.fail("demo: closing the queue: %v", err)
	}
	select {
	case <-watch:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		return interrupted()
	}

	board, err := seg.Lookup(shm.Spec{Name: "board", Kind: shm.KindBytes, KindVersion: 1})
	if err != nil {
		return c.fail("demo: %v", err)
	}
	var want, sumDone, sumSums int64
	for t := int64(1); t <= int64(*tasks); t++ {
		want += t * t
	}
	for i := range children {
		done := atomic.LoadInt64(i64(board, workerOff(i, 0)))
		sum := atomic.LoadInt64(i64(board, workerOff(i, 1)))
		sumDone += done
		sumSums += sum
		var phases []string
		for p := range demoPhases {
			phases = append(phases, fmt.Sprintf("phase %d: %d", p+1, atomic.LoadInt64(i64(board, workerOff(i, 2+p)))))
		}
		fmt.Fprintf(c.stdout, "worker %d (pid %d): %d tasks (%s), results sum %d\n", i, children[i].Pid(), done, strings.Join(phases, ", "), sum)
	}
	got := total.Load()
	if got != want || sumDone != int64(*tasks) || sumSums != want {
		return c.fail("demo: CHECK FAILED: total %d, want %d; tasks done %d of %d; workers' sums add to %d", got, want, sumDone, *tasks, sumSums)
	}
	fmt.Fprintf(c.stdout, "total %d = sum of t² for t = 1..%d: checked\n", got, *tasks)
	return exitOK
}

// demoRole is the demo's worker role. Arguments: segment path, worker
// index, workers, tasks, delay.
const demoRole = "mpipc-demo-worker"

func init() { process.Register(demoRole, demoWorker) }

func demoWorker(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("%d arguments, want 5", len(args))
	}
	path := args[0]
	idx, err1 := strconv.Atoi(args[1])
	workers, err2 := strconv.Atoi(args[2])
	tasks, err4 := strconv.ParseInt(args[3], 10, 64)
	delay, err3 := time.ParseDuration(args[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("bad arguments: %w", err)
	}
	seg, err := shm.Open(path, nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	q, err := ringbuf.OpenJoinable(seg, "tasks", nil)
	if err != nil {
		return err
	}
	total, err := value.Open[int64](seg, "total", nil)
	if err != nil {
		return err
	}
	l, err := lock.Open(seg, "lock", nil)
	if err != nil {
		return err
	}
	board, err := seg.Lookup(shm.Spec{Name: "board", Kind: shm.KindBytes, KindVersion: 1})
	if err != nil {
		return err
	}
	if idx < 0 || idx >= workers || len(board) < int(boardSize(workers)) {
		return fmt.Errorf("board of %d bytes has no room for worker %d of %d", len(board), idx, workers)
	}
	done, sum := i64(board, workerOff(idx, 0)), i64(board, workerOff(idx, 1))
	b, err := barrier.Open(seg, "phase", nil)
	if err != nil {
		return err
	}
	defer b.Close()
	meet := func() error { _, err := b.Wait(nil); return err }
	mu := l.Locker()
	var buf [8]byte
	for {
		n, err := q.GetInto(nil, buf[:])
		if errors.Is(err, ringbuf.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if n != 8 {
			return fmt.Errorf("task message of %d bytes", n)
		}
		t := int64(binary.LittleEndian.Uint64(buf[:]))
		if t == 0 { // end of a phase: wait for the others
			if err := q.TaskDone(); err != nil {
				return err
			}
			if err := meet(); err != nil {
				return err
			}
			continue
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		r := t * t
		if _, err := total.Update(func(v *int64) { *v += r }); err != nil {
			return err
		}
		mu.Lock()
		*done++
		*sum += r
		if p := (t - 1) * demoPhases / max(tasks, 1); p >= 0 && p < demoPhases {
			*i64(board, workerOff(idx, 2+int(p)))++
		}
		mu.Unlock()
		if err := q.TaskDone(); err != nil {
			return err
		}
	}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
