package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// The demo: a parent and N worker processes (this binary, re-executed with
// envDemo set) share one segment holding
//
//	"lock"   a Lock guarding the board
//	"board"  raw bytes: the next task (int64), the total (int64), per worker
//	         the tasks done and the sum of results (int64 pairs)
//
// Each worker takes task numbers from the board under the lock, works on
// one (squares it, after -delay), and adds the result to the total under
// the lock. The parent checks total == Σ t² and prints what each did.
const envDemo = "MPIPC_DEMO_WORKER" // segment path; worker index in MPIPC_DEMO_IDX

const (
	boardNext    = 0
	boardTotal   = 8
	boardWorkers = 64 // per worker: done, sum
	maxDemoProcs = 64
)

func boardSize(workers int) int64 { return boardWorkers + 16*int64(workers) }

func i64(mem []byte, off int) *int64 { return (*int64)(unsafe.Pointer(&mem[off])) }

func runDemo(c *cli, args []string) int {
	fs := c.flags("demo")
	workers := fs.Int("workers", 3, "worker processes")
	tasks := fs.Int("tasks", 1000, "tasks to hand out")
	delay := fs.Duration("delay", 0, "time each task takes (to watch it, or to interrupt it)")
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
	cleanup := func() {
		seg.Close()
		if err := shm.Remove(name, nil); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(c.stderr, "mpipc: demo: removing %s: %v (remove it with 'mpipc rm %s')\n", path, err, name)
		}
	}
	defer cleanup()

	// Remove the segment on SIGINT/SIGTERM too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if _, err := lock.Create(seg, "lock", nil); err != nil {
		return c.fail("demo: %v", err)
	}
	if _, err := seg.Alloc(shm.Spec{Name: "board", Kind: shm.KindBytes, KindVersion: 1, Size: boardSize(*workers)}, func([]byte) error { return nil }); err != nil {
		return c.fail("demo: creating the board in %s: %v", path, err)
	}
	fmt.Fprintf(c.stdout, "segment %s: %d workers, %d tasks\n", path, *workers, *tasks)

	exe, err := os.Executable()
	if err != nil {
		return c.fail("demo: finding own executable to start workers: %v", err)
	}
	type child struct {
		cmd  *exec.Cmd
		out  *bufio.Scanner
		done chan error
	}
	children := make([]*child, *workers)
	killAll := func() {
		for _, ch := range children {
			if ch != nil {
				ch.cmd.Process.Kill()
			}
		}
	}
	for i := range children {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), envDemo+"="+path, "MPIPC_DEMO_IDX="+strconv.Itoa(i),
			"MPIPC_DEMO_TASKS="+strconv.Itoa(*tasks), "MPIPC_DEMO_DELAY="+delay.String())
		cmd.Stderr = c.stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			killAll()
			return c.fail("demo: starting worker %d (%s): %v", i, exe, err)
		}
		ch := &child{cmd: cmd, out: bufio.NewScanner(out), done: make(chan error, 1)}
		children[i] = ch
	}
	lines := make([][]string, *workers)
	finished := make(chan int, *workers)
	for i, ch := range children {
		go func() {
			for ch.out.Scan() {
				lines[i] = append(lines[i], ch.out.Text())
			}
			ch.done <- ch.cmd.Wait()
			finished <- i
		}()
	}
	var errs []error
	for range children {
		select {
		case sig := <-sigs:
			killAll()
			for _, ch := range children {
				ch.cmd.Process.Wait()
			}
			fmt.Fprintf(c.stderr, "mpipc: demo: %v: workers stopped, segment %s removed\n", sig, path)
			return exitFail
		case i := <-finished:
			if err := <-children[i].done; err != nil {
				errs = append(errs, fmt.Errorf("worker %d (pid %d): %v", i, children[i].cmd.Process.Pid, err))
			}
		}
	}
	if len(errs) > 0 {
		return c.fail("demo: %v", errors.Join(errs...))
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
		done := atomic.LoadInt64(i64(board, boardWorkers+16*i))
		sum := atomic.LoadInt64(i64(board, boardWorkers+16*i+8))
		sumDone += done
		sumSums += sum
		fmt.Fprintf(c.stdout, "worker %d (pid %d): %d tasks, results sum %d", i, children[i].cmd.Process.Pid, done, sum)
		if len(lines[i]) > 0 {
			fmt.Fprintf(c.stdout, "  [%s]", strings.Join(lines[i], "; "))
		}
		fmt.Fprintln(c.stdout)
	}
	total := atomic.LoadInt64(i64(board, boardTotal))
	if total != want || sumDone != int64(*tasks) || sumSums != want {
		return c.fail("demo: CHECK FAILED: total %d, want %d; tasks done %d of %d; workers' sums add to %d", total, want, sumDone, *tasks, sumSums)
	}
	fmt.Fprintf(c.stdout, "total %d = sum of t² for t = 1..%d: checked\n", total, *tasks)
	return exitOK
}

// demoWorkerMain runs the demo's worker role and exits if this process was
// started as one.
func demoWorkerMain() {
	path := os.Getenv(envDemo)
	if path == "" {
		return
	}
	if err := demoWorker(path); err != nil {
		fmt.Fprintf(os.Stderr, "mpipc demo worker %s: %v\n", os.Getenv("MPIPC_DEMO_IDX"), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func demoWorker(path string) error {
	idx, err1 := strconv.Atoi(os.Getenv("MPIPC_DEMO_IDX"))
	tasks, err2 := strconv.ParseInt(os.Getenv("MPIPC_DEMO_TASKS"), 10, 64)
	delay, err3 := time.ParseDuration(os.Getenv("MPIPC_DEMO_DELAY"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("bad environment: %w", err)
	}
	seg, err := shm.Open(path, nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	l, err := lock.Open(seg, "lock", nil)
	if err != nil {
		return err
	}
	board, err := seg.Lookup(shm.Spec{Name: "board", Kind: shm.KindBytes, KindVersion: 1})
	if err != nil {
		return err
	}
	if len(board) < int(boardSize(idx+1)) {
		return fmt.Errorf("board of %d bytes has no room for worker %d", len(board), idx)
	}
	next, total := i64(board, boardNext), i64(board, boardTotal)
	done, sum := i64(board, boardWorkers+16*idx), i64(board, boardWorkers+16*idx+8)
	mu := l.Locker()
	for {
		mu.Lock()
		*next++
		t := *next
		mu.Unlock()
		if t > tasks {
			return nil
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		r := t * t
		mu.Lock()
		*total += r
		*done++
		*sum += r
		mu.Unlock()
	}
}
