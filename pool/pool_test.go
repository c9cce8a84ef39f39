//go:build linux

package pool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/pool"
	"github.com/mpipc/mpipc/process"
)

func TestMain(m *testing.M) {
	process.Main()
	os.Exit(m.Run())
}

func f(x int64) int64 { return x*x + 1 }

var (
	square  = pool.NewFunc("test.square", func(x int64) (int64, error) { return f(x), nil })
	failOdd = pool.NewFunc("test.failodd", func(x int64) (int64, error) {
		if x%2 == 1 {
			return 0, fmt.Errorf("odd %d", x)
		}
		return x, nil
	})
	panics = pool.NewFunc("test.panic", func(x int64) (int64, error) { panic("boom " + strconv.FormatInt(x, 10)) })
	pidOf  = pool.NewFunc("test.pid", func(int64) (int64, error) { return int64(os.Getpid()), nil })
	sleepy = pool.NewFunc("test.sleep", func(ms int64) (int64, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ms, nil
	})
	echo = pool.NewFunc("test.echo", func(b []byte) ([]byte, error) { return append([]byte("re:"), b...), nil })
	// killer computes f(x), except that every Nth call across all workers
	// (N in $POOLTEST_EVERY; the count in the file $POOLTEST_KILLFILE)
	// records x and SIGKILLs its own worker.
	killer = pool.NewFunc("test.killer", func(x int64) (int64, error) {
		k := killFile()
		c := atomic.AddUint64(&k[0], 1)
		if every, _ := strconv.ParseUint(os.Getenv("POOLTEST_EVERY"), 10, 64); every > 0 && c%every == 0 {
			i := atomic.AddUint64(&k[1], 1)
			atomic.StoreUint64(&k[1+i], uint64(x)+1)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return f(x), nil
	})
)

const killSlots = 4096

var (
	killOnce sync.Once
	killMem  []uint64
)

func killFile() []uint64 {
	killOnce.Do(func() {
		mem, err := proctest.MapFile(os.Getenv("POOLTEST_KILLFILE"))
		if err != nil {
			panic(err)
		}
		killMem = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), len(mem)/8)
	})
	return killMem
}

// setupKiller makes killer kill a worker every `every` calls and returns
// the shared counters: [0] calls, [1] kills, [2...] killed tasks + 1.
func setupKiller(t *testing.T, every int) []uint64 {
	path, mem := proctest.SharedFile(t, 8*killSlots)
	t.Setenv("POOLTEST_KILLFILE", path)
	t.Setenv("POOLTEST_EVERY", strconv.Itoa(every))
	return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), killSlots)
}

func newPool(t *testing.T, n int, o *pool.Options) *pool.Pool {
	t.Helper()
	p, err := pool.New(context.Background(), n, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Terminate() })
	return p
}

func tasks(n int) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = int64(i)
	}
	return ts
}

func checkSquares(t testing.TB, got []int64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	for i, r := range got {
		if r != f(int64(i)) {
			t.Fatalf("result %d = %d, want %d", i, r, f(int64(i)))
		}
	}
}

func size(big, small int) int {
	if testing.Short() {
		return small
	}
	return big
}

func TestMapInOrder(t *testing.T) {
	p := newPool(t, 4, nil)
	n := size(100_000, 10_000)
	for _, chunk := range []int{0, 1, 7} {
		got, err := pool.Map(context.Background(), p, square, tasks(n), &pool.MapOptions{ChunkSize: chunk})
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		checkSquares(t, got, n)
	}
	if got, err := pool.Map(context.Background(), p, square, nil, nil); err != nil || len(got) != 0 {
		t.Fatalf("Map of no tasks = %v, %v", got, err)
	}
}

func TestMapUnorderedExactlyOnce(t *testing.T) {
	p := newPool(t, 4, nil)
	n := size(100_000, 10_000)
	for _, chunk := range []int{0, 1} {
		seen := make([]int, n)
		for r := range pool.MapUnordered(context.Background(), p, square, tasks(n), &pool.MapOptions{ChunkSize: chunk}) {
			if r.Err != nil || r.Index < 0 || r.Index >= n || r.Value != f(int64(r.Index)) {
				t.Fatalf("result %+v", r)
			}
			seen[r.Index]++
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("chunk %d: task %d yielded %d times", chunk, i, c)
			}
		}
	}
}

// TestWorkerKilledRetried: a worker dies every 1000 calls; with retries
// every task completes, exactly once, and the pool stays usable.
func TestWorkerKilledRetried(t *testing.T) {
	k := setupKiller(t, 1000)
	p := newPool(t, 4, &pool.Options{Retries: 5, Stderr: io.Discard})
	n := size(100_000, 10_000)
	got, err := pool.Map(context.Background(), p, killer, tasks(n), &pool.MapOptions{ChunkSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	checkSquares(t, got, n)
	seen := make([]int, n)
	for r := range pool.MapUnordered(context.Background(), p, killer, tasks(n), &pool.MapOptions{ChunkSize: 1}) {
		if r.Err != nil || r.Value != f(int64(r.Index)) {
			t.Fatalf("result %+v", r)
		}
		seen[r.Index]++
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d yielded %d times", i, c)
		}
	}
	kills := atomic.LoadUint64(&k[1])
	if calls := atomic.LoadUint64(&k[0]); kills < uint64(2*n/1000)-1 || kills != calls/1000 {
		t.Fatalf("%d kills in %d calls", kills, calls)
	}
	got, err = pool.Map(context.Background(), p, square, tasks(1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSquares(t, got, 1000)
	t.Logf("%d workers killed, all tasks done", kills)
}

// TestWorkerKilledNoRetry: without retries, exactly the tasks that were
// running in a killed worker fail with ErrWorkerDied.
func TestWorkerKilledNoRetry(t *testing.T) {
	k := setupKiller(t, 1000)
	p := newPool(t, 4, &pool.Options{Stderr: io.Discard})
	n := size(100_000, 10_000)
	got, err := pool.Map(context.Background(), p, killer, tasks(n), &pool.MapOptions{ChunkSize: 1})
	var es pool.Errors
	if !errors.As(err, &es) || !errors.Is(err, pool.ErrWorkerDied) {
		t.Fatalf("Map = %v, want Errors with ErrWorkerDied", err)
	}
	killed := map[int]bool{}
	for i := range atomic.LoadUint64(&k[1]) {
		killed[int(atomic.LoadUint64(&k[2+i]))-1] = true
	}
	if len(killed) == 0 || len(killed) != len(es) {
		t.Fatalf("%d tasks killed their worker, %d failed: %v", len(killed), len(es), err)
	}
	for _, e := range es {
		var wd *pool.WorkerDiedError
		var ee *process.ExitError
		if !killed[e.Index] || !errors.As(e, &wd) || wd.Attempts != 1 || !errors.As(e, &ee) || ee.Signal != syscall.SIGKILL {
			t.Fatalf("task %d failed with %v (killed %v)", e.Index, e, killed[e.Index])
		}
	}
	for i, r := range got {
		if !killed[i] && r != f(int64(i)) {
			t.Fatalf("result %d = %d", i, r)
		}
	}
	t.Setenv("POOLTEST_EVERY", "0")
	got, err = pool.Map(context.Background(), p, square, tasks(1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSquares(t, got, 1000)
}

func TestMaxTasksPerChild(t *testing.T) {
	p := newPool(t, 2, &pool.Options{MaxTasksPerChild: 5})
	got, err := pool.Map(context.Background(), p, pidOf, tasks(100), &pool.MapOptions{ChunkSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	per := map[int64]int{}
	for _, pid := range got {
		per[pid]++
	}
	for pid, c := range per {
		if c > 5 {
			t.Fatalf("worker %d ran %d tasks, limit 5", pid, c)
		}
	}
	if len(per) < 20 || p.Started() < 20 {
		t.Fatalf("%d workers ran 100 tasks with a limit of 5; %d started", len(per), p.Started())
	}
	// A chunk is one task, as in Python.
	got, err = pool.Map(context.Background(), p, pidOf, tasks(100), &pool.MapOptions{ChunkSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	per = map[int64]int{}
	for _, pid := range got {
		per[pid]++
	}
	for pid, c := range per {
		if c > 50 {
			t.Fatalf("worker %d ran %d tasks (chunks of 10), limit 5 chunks", pid, c)
		}
	}
}

func TestTaskErrors(t *testing.T) {
	p := newPool(t, 2, nil)
	got, err := pool.Map(context.Background(), p, failOdd, tasks(100), &pool.MapOptions{ChunkSize: 3})
	var es pool.Errors
	if !errors.As(err, &es) || len(es) != 50 {
		t.Fatalf("Map = %v, want 50 failures", err)
	}
	for j, e := range es {
		if e.Index != 2*j+1 || e.Err.Error() != fmt.Sprintf("odd %d", e.Index) {
			t.Fatalf("failure %d: %v", j, e)
		}
	}
	for i := 0; i < 100; i += 2 {
		if got[i] != int64(i) {
			t.Fatalf("result %d = %d", i, got[i])
		}
	}
	if _, err := pool.Apply(context.Background(), p, panics, 7); err == nil || err.Error() != "pool: task 0: panic: boom 7" {
		t.Fatalf("Apply of a panicking function = %v", err)
	}
	if v, err := pool.Apply(context.Background(), p, square, 9); err != nil || v != 82 {
		t.Fatalf("Apply after a panic = %v, %v", v, err)
	}
}

func TestSubmit(t *testing.T) {
	p := newPool(t, 2, nil)
	var fs []*pool.Future[int64]
	for i := range 50 {
		fu, err := pool.Submit(p, square, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, fu)
	}
	for i, fu := range fs {
		if v, err := fu.Get(context.Background()); err != nil || v != f(int64(i)) {
			t.Fatalf("future %d = %v, %v", i, v, err)
		}
	}
	slow, _ := pool.Submit(p, sleepy, 300)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := slow.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with a short deadline = %v", err)
	}
	if v, err := slow.Get(context.Background()); err != nil || v != 300 {
		t.Fatalf("Get again = %v, %v", v, err)
	}
}

func TestBytes(t *testing.T) {
	p := newPool(t, 2, &pool.Options{MaxMsg: 1024})
	var in [][]byte
	for i := range 300 {
		in = append(in, bytes.Repeat([]byte{byte('a' + i%26)}, i%200))
	}
	got, err := pool.Map(context.Background(), p, echo, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !bytes.Equal(got[i], append([]byte("re:"), in[i]...)) {
			t.Fatalf("result %d = %q", i, got[i])
		}
	}
	if _, err := pool.Map(context.Background(), p, echo, [][]byte{make([]byte, 2000)}, nil); !errors.Is(err, pool.ErrTooLarge) {
		t.Fatalf("Map of a task larger than a message = %v, want ErrTooLarge", err)
	}
	// A result too large for a message fails alone; the others of its
	// chunk run again in a chunk of their own.
	got, err = pool.Map(context.Background(), p, echo, [][]byte{make([]byte, 500), make([]byte, 1004), make([]byte, 1)}, &pool.MapOptions{ChunkSize: 3})
	var es pool.Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Index != 1 || !errors.Is(err, pool.ErrTooLarge) || len(got[0]) != 503 || len(got[2]) != 4 {
		t.Fatalf("results too large: %v, lengths %d %d %d", err, len(got[0]), len(got[1]), len(got[2]))
	}
}

func TestMapCancel(t *testing.T) {
	p := newPool(t, 2, &pool.Options{Depth: 2})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	t0 := time.Now()
	naps := make([]int64, 1000)
	for i := range naps {
		naps[i] = 20
	}
	_, err := pool.Map(ctx, p, sleepy, naps, &pool.MapOptions{ChunkSize: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Map = %v, want context.Canceled", err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Fatalf("Map returned %v after its start, 50 ms after the cancel", el)
	}
	// Its chunks are no longer dispatched: a new call runs at once.
	t1 := time.Now()
	if v, err := pool.Apply(context.Background(), p, square, 3); err != nil || v != 10 {
		t.Fatalf("Apply after a cancelled Map = %v, %v", v, err)
	}
	if el := time.Since(t1); el > 2*time.Second {
		t.Fatalf("Apply took %v after the cancelled Map", el)
	}
	var n int
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	for r := range pool.MapUnordered(ctx2, p, square, tasks(1000), &pool.MapOptions{ChunkSize: 1}) {
		if n++; n == 10 {
			cancel2()
		}
		if r.Err != nil && !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("result %+v", r)
		}
	}
	if n != 1000 {
		t.Fatalf("MapUnordered cancelled yielded %d results, want one per task", n)
	}
}

func TestCloseWait(t *testing.T) {
	p := newPool(t, 2, nil)
	fu, err := pool.Submit(p, sleepy, 100)
	if err != nil {
		t.Fatal(err)
	}
	pids := p.Pids()
	p.Close()
	if _, err := pool.Map(context.Background(), p, square, tasks(10), nil); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("Map after Close = %v, want ErrClosed", err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if v, err := fu.Get(context.Background()); err != nil || v != 100 {
		t.Fatalf("work submitted before Close = %v, %v", v, err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("worker %d still there after Wait: %v", pid, err)
		}
	}
}

// TestContextEndsPool: cancelling New's context terminates the pool.
func TestContextEndsPool(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := pool.New(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	fu, err := pool.Submit(p, sleepy, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	pids := p.Pids()
	cancel()
	if _, err := fu.Get(context.Background()); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("task of a pool whose context ended = %v, want ErrClosed", err)
	}
	p.Wait()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("worker %d still there: %v", pid, err)
		}
	}
}

func TestTerminate(t *testing.T) {
	p := newPool(t, 2, nil)
	fu, err := pool.Submit(p, sleepy, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	if err := p.Terminate(); err != nil {
		t.Fatal(err)
	}
	if _, err := fu.Get(context.Background()); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("task cut by Terminate = %v, want ErrClosed", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("Terminate took %v", el)
	}
	if _, err := pool.Submit(p, square, 1); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("Submit after Terminate = %v, want ErrClosed", err)
	}
}

var (
	parentOnlyOnce sync.Once
	parentOnly     *pool.Func[int64, int64]
)

// TestWorkerDiesWithStderr: a function the workers' binary does not know
// (registered in the parent only) makes the worker exit; the task fails
// with ErrWorkerDied carrying the worker's status and stderr.
func TestWorkerDiesWithStderr(t *testing.T) {
	parentOnlyOnce.Do(func() { // registered in this process alone, once even with -count
		parentOnly = pool.NewFunc("test.parent-only", func(x int64) (int64, error) { return x, nil })
	})
	p := newPool(t, 1, &pool.Options{Stderr: io.Discard})
	_, err := pool.Apply(context.Background(), p, parentOnly, 1)
	var ee *process.ExitError
	if !errors.Is(err, pool.ErrWorkerDied) || !errors.As(err, &ee) || ee.Code != 1 || !bytes.Contains([]byte(ee.Stderr), []byte("no function")) {
		t.Fatalf("Apply = %v, want ErrWorkerDied with status 1 and the worker's complaint", err)
	}
	// Workers that keep dying before any result break the pool.
	_, err = pool.Map(context.Background(), p, parentOnly, tasks(30), &pool.MapOptions{ChunkSize: 1})
	if !errors.Is(err, pool.ErrBroken) {
		t.Fatalf("Map = %v, want ErrBroken", err)
	}
	if _, err := pool.Submit(p, square, 1); !errors.Is(err, pool.ErrBroken) {
		t.Fatalf("Submit to a broken pool = %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		n int
		o pool.Options
	}{{0, pool.Options{}}, {pool.MaxWorkers + 1, pool.Options{}}, {1, pool.Options{Depth: 3}}, {1, pool.Options{Retries: -1}}, {1, pool.Options{MaxMsg: 8}}} {
		if _, err := pool.New(context.Background(), c.n, &c.o); !errors.Is(err, pool.ErrInvalid) {
			t.Fatalf("New(%d, %+v) = %v, want ErrInvalid", c.n, c.o, err)
		}
	}
}
