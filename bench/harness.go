package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
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

// Environment of a re-executed worker.
const (
	envWorker = "MPIPC_BENCH_WORKER" // case id
	envFile   = "MPIPC_BENCH_FILE"   // path of the shared file
	envIdx    = "MPIPC_BENCH_IDX"    // worker index
	envN      = "MPIPC_BENCH_N"      // iterations
	envProcs  = "MPIPC_BENCH_PROCS"  // number of workers
	envFiles  = "MPIPC_BENCH_NFILES" // inherited files, fd 3...
)

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

func createShared(size int) (*shared, error) {
	f, err := os.CreateTemp("/dev/shm", "mpipc-bench-*")
	if err != nil {
		return nil, fmt.Errorf("creating the benchmark file: %w", err)
	}
	defer f.Close()
	total := headerSize + size
	if err := f.Truncate(int64(total)); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("sizing %s: %w", f.Name(), err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("mapping %s: %w", f.Name(), err)
	}
	for i := range mem { // fault the pages in up front, as the C anchors do
		mem[i] = 0
	}
	return &shared{path: f.Name(), mem: mem}, nil
}

func openShared(path string) (*shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return &shared{path: path, mem: mem}, nil
}

func (s *shared) close() {
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
	os.Remove(s.path)
}

// now is CLOCK_MONOTONIC in ns, comparable across processes.
func now() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// Worker is what a worker process sees of its run.
type Worker struct {
	Idx, Procs int
	N          int64
	sh         *shared
	files      []*os.File
}

// Objects is the case's shared area.
func (w *Worker) Objects() []byte { return w.sh.objects() }

// Result is the i-th shared result word.
func (w *Worker) Result(i int) *uint64 { return w.sh.result(i) }

// Turn is a spare shared futex word.
func (w *Worker) Turn() *uint32 { return w.sh.u32(offTurn) }

// File is the i-th file the parent passed.
func (w *Worker) File(i int) *os.File { return w.files[i] }

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

// IsWorker reports whether this process was started as a benchmark worker.
func IsWorker() bool { return os.Getenv(envWorker) != "" }

// WorkerMain runs the benchmark worker role and exits if this process was
// started as one; otherwise it returns at once. Call it first thing in main
// (and in TestMain) of any program that runs the suite, since the suite
// re-executes its own binary for its workers.
func WorkerMain() {
	id := os.Getenv(envWorker)
	if id == "" {
		return
	}
	if err := runWorker(id); err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s[%s]: %v\n", id, os.Getenv(envIdx), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runWorker(id string) error {
	fn := workers[id]
	if fn == nil {
		return fmt.Errorf("unknown case %q (parent and worker binaries differ?)", id)
	}
	idx, err1 := strconv.Atoi(os.Getenv(envIdx))
	procs, err2 := strconv.Atoi(os.Getenv(envProcs))
	n, err3 := strconv.ParseInt(os.Getenv(envN), 10, 64)
	nf, err4 := strconv.Atoi(os.Getenv(envFiles))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("bad worker environment: %w", err)
	}
	if idx < 0 || idx >= maxWorkers {
		return fmt.Errorf("worker index %d out of range", idx)
	}
	sh, err := openShared(os.Getenv(envFile))
	if err != nil {
		return err
	}
	w := &Worker{Idx: idx, Procs: procs, N: n, sh: sh}
	for i := 0; i < nf; i++ {
		w.files = append(w.files, os.NewFile(uintptr(3+i), "inherited"+strconv.Itoa(i)))
	}
	loop, err := fn(w)
	if err != nil {
		return err
	}
	ready := sh.u32(offReady)
	atomic.AddUint32(ready, 1)
	futex.Wake(ready, 1)
	g := sh.u32(offGo)
	for atomic.LoadUint32(g) == 0 {
		futex.Wait(nil, g, 0, time.Time{})
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
	self  string                                   // executable to run; default os.Executable()
	env   []string                                 // extra environment
}

// Executable is the binary re-executed for workers. Empty means
// os.Executable().
var Executable string

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
	exe := Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return 0, fmt.Errorf("finding own executable to start workers: %w", err)
		}
	}
	type child struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
		done   chan struct{}
		err    error
	}
	children := make([]*child, spec.procs)
	killAll := func() {
		for _, c := range children {
			if c != nil && c.cmd.Process != nil {
				c.cmd.Process.Kill()
			}
		}
	}
	for i := range children {
		c := &child{cmd: exec.Command(exe), done: make(chan struct{})}
		c.cmd.Env = append(os.Environ(),
			envWorker+"="+spec.id, envFile+"="+sh.path, envIdx+"="+strconv.Itoa(i),
			envN+"="+strconv.FormatInt(spec.n, 10), envProcs+"="+strconv.Itoa(spec.procs),
			envFiles+"="+strconv.Itoa(len(files)))
		c.cmd.Env = append(c.cmd.Env, spec.env...)
		c.cmd.Stderr = &c.stderr
		c.cmd.Stdout = &c.stderr
		c.cmd.ExtraFiles = files
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.cmd.Start(); err != nil {
			killAll()
			for _, f := range files {
				f.Close()
			}
			return 0, fmt.Errorf("starting worker %d of %s (%s): %w", i, spec.id, exe, err)
		}
		children[i] = c
		go func() { c.err = c.cmd.Wait(); close(c.done) }()
	}
	for _, f := range files { // the workers have their copies
		f.Close()
	}
	failed := func() error {
		var errs []error
		for i, c := range children {
			select {
			case <-c.done:
				if c.err != nil {
					errs = append(errs, fmt.Errorf("worker %d of %s: %v: %s", i, spec.id, c.err, bytes.TrimSpace(c.stderr.Bytes())))
				}
			default:
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
		futex.Wait(nil, ready, r, time.Now().Add(50*time.Millisecond))
	}
	os.Remove(sh.path) // every worker has it mapped: leave nothing behind if we die
	atomic.StoreUint32(sh.u32(offGo), 1)
	futex.Wake(sh.u32(offGo), math.MaxInt32)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var errs []error
	for i, c := range children {
		select {
		case <-c.done:
		case <-timer.C:
			killAll()
			<-c.done
			errs = append(errs, fmt.Errorf("%s: timed out after %v", spec.id, caseTimeout))
		}
		if c.err != nil {
			errs = append(errs, fmt.Errorf("worker %d of %s: %v: %s", i, spec.id, c.err, bytes.TrimSpace(c.stderr.Bytes())))
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
