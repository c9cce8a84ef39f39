package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/mpipc/mpipc/pool"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The demo: a pool of N worker processes (this binary, re-executed) squares
// the tasks 1..T in two phases, the first with Map (results in order), the
// second with MapUnordered (results as they come). A named segment holds
// one shared Value, "executed": every worker adds 1 to it for each task it
// starts, so `mpipc stat` shows the work going on. Midway through phase 2
// the parent SIGKILLs one worker (-kill): the pool sees the death, starts a
// new worker in its place and runs the task it was working on again; the
// demo then checks that every result arrived once and is right, and shows
// in "executed" that the killed worker's task ran twice.

// envDemoSegment tells the workers where "executed" lives: they inherit it.
const envDemoSegment = "MPIPC_DEMO_SEGMENT"

const demoPhases = 2

// demoResult is what a worker returns for a task.
type demoResult struct {
	Square int64
	Pid    int64
}

var demoSquare = pool.NewFunc("mpipc.demo.square", func(t [2]int64) (demoResult, error) {
	x, delay := t[0], time.Duration(t[1])
	ex, err := demoExecuted()
	if err != nil {
		return demoResult{}, err
	}
	ex.Add(1)
	if delay > 0 {
		time.Sleep(delay)
	}
	return demoResult{Square: x * x, Pid: int64(os.Getpid())}, nil
})

var (
	demoOnce sync.Once
	demoVal  *value.Value[int64]
	demoErr  error
)

// demoExecuted opens the "executed" counter once per worker.
func demoExecuted() (*value.Value[int64], error) {
	demoOnce.Do(func() {
		var seg *shm.Segment
		if seg, demoErr = shm.Open(os.Getenv(envDemoSegment), nil); demoErr == nil {
			demoVal, demoErr = value.Open[int64](seg, "executed", nil)
		}
	})
	return demoVal, demoErr
}

func runDemo(c *cli, args []string) int {
	fs := c.flags("demo")
	workers := fs.Int("workers", 3, "worker processes")
	tasks := fs.Int("tasks", 200, "tasks to hand out, split over the phases")
	delay := fs.Duration("delay", time.Millisecond, "time each task takes (to watch it, or to interrupt it)")
	kill := fs.Bool("kill", true, "SIGKILL one worker midway through phase 2, to watch the pool recover")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		return c.usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *workers < 1 || *workers > pool.MaxWorkers {
		return c.usageErr(fs, "-workers must be in 1..%d, not %d", pool.MaxWorkers, *workers)
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
	executed, err := value.Create[int64](seg, "executed", 0, nil)
	if err != nil {
		return c.fail("demo: %v", err)
	}

	// Remove the segment on SIGINT/SIGTERM too: a signal cancels ctx, which
	// stops the parent wherever it waits.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	os.Setenv(envDemoSegment, path) // the workers inherit it
	p, err := pool.New(ctx, *workers, &pool.Options{Retries: 2, Stdout: c.stderr, Stderr: c.stderr})
	if err != nil {
		return c.fail("demo: %v", err)
	}
	defer p.Terminate()
	fmt.Fprintf(c.stdout, "segment %s: %d workers %v, %d tasks in %d phases\n", path, *workers, p.Pids(), *tasks, demoPhases)
	interrupted := func() int {
		p.Terminate()
		fmt.Fprintf(c.stderr, "mpipc: demo: interrupted: workers stopped, segment %s removed\n", path)
		return exitFail
	}

	perPid := map[int64]*[demoPhases]int{}
	var sum int64
	record := func(phase int, r demoResult) {
		if perPid[r.Pid] == nil {
			perPid[r.Pid] = new([demoPhases]int)
		}
		perPid[r.Pid][phase]++
		sum += r.Square
	}
	task := func(x int) [2]int64 { return [2]int64{int64(x), int64(*delay)} }
	half := *tasks / 2

	// Phase 1: Map, results in task order.
	var in [][2]int64
	for x := 1; x <= half; x++ {
		in = append(in, task(x))
	}
	out, err := pool.Map(ctx, p, demoSquare, in, &pool.MapOptions{ChunkSize: 1})
	if ctx.Err() != nil {
		return interrupted()
	}
	if err != nil {
		return c.fail("demo: phase 1: %v", err)
	}
	for _, r := range out {
		record(0, r)
	}
	fmt.Fprintf(c.stdout, "phase 1: tasks up to %d done (Map: results in task order)\n", half)

	// Phase 2: MapUnordered; a worker is killed when half the results are in.
	in = in[:0]
	for x := half + 1; x <= *tasks; x++ {
		in = append(in, task(x))
	}
	var killed int
	got := 0
	for r := range pool.MapUnordered(ctx, p, demoSquare, in, &pool.MapOptions{ChunkSize: 1}) {
		if r.Err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			return c.fail("demo: phase 2: %v", r.Err)
		}
		record(1, r.Value)
		if got++; *kill && killed == 0 && got >= len(in)/2 {
			killed = int(r.Value.Pid) // busy with its next task by now
			if err := killProcess(killed); err != nil {
				return c.fail("demo: killing worker %d: %v", killed, err)
			}
			fmt.Fprintf(c.stdout, "phase 2: killed worker pid %d with SIGKILL after %d of %d results\n", killed, got, len(in))
		}
	}
	fmt.Fprintf(c.stdout, "phase 2: tasks up to %d done (MapUnordered: results as they came)\n", *tasks)

	pids := make([]int64, 0, len(perPid))
	for pid := range perPid {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	var tasksDone int
	for _, pid := range pids {
		n := perPid[pid]
		tasksDone += n[0] + n[1]
		note := ""
		if pid == int64(killed) {
			note = " (killed)"
		}
		fmt.Fprintf(c.stdout, "worker (pid %d): %d tasks (phase 1: %d, phase 2: %d)%s\n", pid, n[0]+n[1], n[0], n[1], note)
	}
	fmt.Fprintf(c.stdout, "worker processes started: %d (%d replaced)\n", p.Started(), p.Started()-*workers)
	fmt.Fprintf(c.stdout, "tasks started: %d for %d tasks (a task cut short by a worker's death runs again)\n", executed.Load(), *tasks)
	if err := p.Close(); err != nil {
		return c.fail("demo: %v", err)
	}
	if err := p.Wait(); err != nil {
		return c.fail("demo: %v", err)
	}
	var want int64
	for t := int64(1); t <= int64(*tasks); t++ {
		want += t * t
	}
	if sum != want || tasksDone != *tasks || executed.Load() < int64(*tasks) {
		return c.fail("demo: CHECK FAILED: sum %d, want %d; results %d of %d; executed %d", sum, want, tasksDone, *tasks, executed.Load())
	}
	fmt.Fprintf(c.stdout, "total %d = sum of t² for t = 1..%d: checked\n", sum, *tasks)
	return exitOK
}

// killProcess sends SIGKILL to pid.
func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
