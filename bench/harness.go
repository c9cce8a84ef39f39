package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/process"
)

// Binary layout of the shared file every multi-process case runs in:
//
//	offset 0     uint32      ready: workers that attached and wait to start
//	offset 4     uint32      go: 0 until the parent releases the workers
//	offset 8     uint32      turn: a spare futex word for workloads (W9)
//	offset 64    [16]uint64  start stamps, CLOCK_MONOTONIC ns, per worker
//	offset 192   [16]uint64  end stamps
//	offset 320   [64]uint64  results written by workers, read by the parent
//	offset 4096  the case's objects (layout chosen by the case)
const (
	offReady   = 0
	offGo      = 4
	offTurn    = 8
	offStart   = 64
	offEnd     = 192
	offResults = 320
	numResults = 64
	headerSize = 4096
	maxWorkers = 16
)

// workerRole is the process role of a benchmark worker. Its arguments:
// case id, path of the shared file, worker index, iterations, number of
// workers; the files the case passes are process.File(0...).
const workerRole = "mpipc-bench-worker"

func init() { process.Register(workerRole, runWorker) }

// caseTimeout bounds one run of one case, as run.sh's CASE_TIMEOUT does.
var caseTimeout = 120 * time.Second

// shared is the mapped file of one run.
type shared struct {
	path string
	mem  []byte
}

func (s *shared) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.mem[off])) }
func (s *shared) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[off])) }

// Objects returns the case's area of the file.
func (s *shared) objects() []byte { return s.mem[headerSize:] }

// Result returns the i-th result word.
func (s *shared) result(i int) *uint64 { return s.u64(offResults + 8*i) }

// Worker is what a worker process sees of its run.
type Worker struct {
	Idx, Procs int
	N          int64
	sh         *shared
}

// Objects is the case's shared area.
func (w *Worker) Objects() []byte { return w.sh.objects() }

// Result is the i-th shared result word.
func (w *Worker) Result(i int) *uint64 { return w.sh.result(i) }

// Turn is a spare shared futex word.
func (w *Worker) Turn() *uint32 { return w.sh.u32(offTurn) }

// File is the i-th file the parent passed.
func (w *Worker) File(i int) *os.File {
	f, err := process.File(i)
	if err != nil {
		panic("bench: " + err.Error()) // the case asked for a file it did not pass
	}
	return f
}

// A workerFunc attaches to the case's objects (untimed) and returns the
// timed loop.
type workerFunc func(w *Worker) (loop func() error, err error)

var workers = map[string]workerFunc{}

func registerWorker(id string, fn workerFunc) {
	if _, dup := workers[id]; dup {
		panic("bench: worker registered twice: " + id)
	}
	workers[id] = fn
}

// WorkerMain runs the benchmark worker role and exits if this process was
// started as one (it is process.Main); otherwise it returns at once. Call
// it first thing in main (and in TestMain) of any program that runs the
// suite, since the suite re-executes its own binary for its workers.
func WorkerMain() { process.Main() }

func runWorker(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("bench worker: %d arguments, want 5", len(args))
	}
	id := args[0]
	fn := workers[id]
	if fn == nil {
		return fmt.Errorf("unknown case %q (parent and worker binaries differ?)", id)
	}
	idx, err1 := strconv.Atoi(args[2])
	n, err2 := strconv.ParseInt(args[3], 10, 64)
	procs, err3 := strconv.Atoi(args[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("bad worker arguments: %w", err)
	}
	if idx < 0 || idx >= maxWorkers {
		return fmt.Errorf("worker index %d out of range", idx)
	}
	sh, err := openShared(args[1])
	if err != nil {
		return err
	}
	w := &Worker{Idx: idx, Procs: procs, N: n, sh: sh}
	loop, err := fn(w)
	if err != nil {
		return err
	}
	ready := sh.u32(offReady)
	atomic.AddUint32(ready, 1)
	futex.Wake(ready, 1)
	g := sh.u32(offGo)
	for atomic.LoadUint32(g) == 0 {
		futex.Wait(context.Background(), g, 0, time.Time{})
	}
	atomic.StoreUint64(sh.u64(offStart+8*idx), now())
	if err := loop(); err != nil {
		return err
	}
	atomic.StoreUint64(sh.u64(offEnd+8*idx), now())
	return nil
}

// procSpec describes one multi-process run.
type procSpec struct {
	id    string                                   // worker id (registered with registerWorker)
	procs int                                      // number of worker processes
	n     int64                                    // iterations, passed to every worker
	size  int                                      // bytes of the objects area
	init  func(mem []byte) error                   // sets up the objects (parent, before workers start)
	files func() ([]*os.File, error)               // files the workers inherit (fd 3...), closed after
	check func(sh *shared, el time.Duration) error // checks the outcome after the workers exited
}

// runProcs runs spec.procs workers through the start protocol and returns
// max(end) − min(start).
func runProcs(spec procSpec) (time.Duration, error) {
	sh, err := createShared(spec.size)
	if err != nil {
		return 0, err
	}
	defer sh.close()
	if spec.init != nil {
		if err := spec.init(sh.objects()); err != nil {
			return 0, fmt.Errorf("setting up %s: %w", spec.id, err)
		}
	}
	var files []*os.File
	if spec.files != nil {
		if files, err = spec.files(); err != nil {
			return 0, fmt.Errorf("setting up %s: %w", spec.id, err)
		}
	}
	// Cancelling ctx kills every worker still running (they are not
	// asked twice: a benchmark worker has nothing to clean up).
	ctx, killAll := context.WithCancel(context.Background())
	defer killAll()
	children := make([]*process.Process, spec.procs)
	for i := range children {
		p, err := process.Start(ctx, workerRole, &process.Options{
			Args: []string{spec.id, sh.path, strconv.Itoa(i),
				strconv.FormatInt(spec.n, 10), strconv.Itoa(spec.procs)},
			Files:  files,
			Stdout: io.Discard,
			Stderr: io.Discard, // the tail comes with the error
			Grace:  time.Millisecond,
		})
		if err != nil {
			killAll()
			for _, f := range files {
				f.Close()
			}
			return 0, fmt.Errorf("starting worker %d of %s: %w", i, spec.id, err)
		}
		children[i] = p
	}
	for _, f := range files { // the workers have their copies
		f.Close()
	}
	failed := func() error {
		var errs []error
		for i, c := range children {
			if c.Alive() {
				continue
			}
			if err := c.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("worker %d of %s: %w", i, spec.id, err))
			}
		}
		return errors.Join(errs...)
	}
	deadline := time.Now().Add(caseTimeout)
	ready := sh.u32(offReady)
	for {
		r := atomic.LoadUint32(ready)
		if int(r) == spec.procs {
			break
		}
		if err := failed(); err != nil {
			killAll()
			return 0, err
		}
		if time.Now().After(deadline) {
			killAll()
			return 0, fmt.Errorf("%s: workers not ready after %v", spec.id, caseTimeout)
		}
		futex.Wait(context.Background(), ready, r, time.Now().Add(50*time.Millisecond))
	}
	os.Remove(sh.path) // every worker has it mapped: leave nothing behind if we die
	atomic.StoreUint32(sh.u32(offGo), 1)
	futex.Wake(sh.u32(offGo), math.MaxInt32)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var errs []error
	for i, c := range children {
		select {
		case <-c.Done():
		case <-timer.C:
			killAll()
			<-c.Done()
			errs = append(errs, fmt.Errorf("%s: timed out after %v", spec.id, caseTimeout))
		}
		if err := c.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d of %s: %w", i, spec.id, err))
			killAll()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	var t0, t1 uint64 = math.MaxUint64, 0
	for i := 0; i < spec.procs; i++ {
		a, b := atomic.LoadUint64(sh.u64(offStart+8*i)), atomic.LoadUint64(sh.u64(offEnd+8*i))
		if a == 0 || b < a {
			return 0, fmt.Errorf("%s: worker %d left no timestamps", spec.id, i)
		}
		t0, t1 = min(t0, a), max(t1, b)
	}
	el := time.Duration(t1 - t0)
	if spec.check != nil {
		if err := spec.check(sh, el); err != nil {
			return 0, fmt.Errorf("%s: %w", spec.id, err)
		}
	}
	return el, nil
}
