//go:build linux

package futex_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/semaphore"
)

// The hub against the legacy wait path, in the same run: the W3
// (semaphore ping-pong) and W8 (queue request/response) round trips
// between two processes, each process on the same path (the parent by
// SetHub, the peer by MPIPC_FUTEX).

func init() {
	pingRoles["w3"] = peerW3
	pingRoles["w8"] = peerW8
}

var pingRoles = map[string]func(mem []byte, n int) error{}

func rolePing(args []string) error {
	if os.Getenv("MPIPC_TEST_SPIN_FLOOR") != "" {
		futex.SpinFloor()
	}
	n, _ := strconv.Atoi(args[2])
	mem, err := proctest.MapFile(args[1])
	if err != nil {
		return err
	}
	return pingRoles[args[0]](mem, n)
}

// forPaths runs f on the default path (direct sleepers, then the hub),
// on the hub alone, and on the legacy path.
func forPaths(b *testing.B, f func(b *testing.B, env []string)) {
	for _, m := range []struct {
		name, env string
		hub       bool
		direct    int32
	}{
		{"default", "MPIPC_FUTEX=", true, 32},
		{"hub-only", "MPIPC_FUTEX=hub", true, 0},
		{"legacy", "MPIPC_FUTEX=legacy", false, 0},
	} {
		b.Run(m.name, func(b *testing.B) {
			restore, ok := futex.SetHub(m.hub)
			defer restore()
			if !ok {
				b.Skip("kernel lacks futex_waitv")
			}
			defer futex.SetMaxDirect(m.direct)()
			f(b, []string{m.env})
		})
	}
}

// w3Sems lays out W3's two semaphores in a shared file and returns its
// path.
func w3Sems(b *testing.B) (string, *semaphore.Semaphore, *semaphore.Semaphore) {
	path, mem := mapShared(b, 2*semaphore.Size)
	s1, err := semaphore.Init(mem[:semaphore.Size], 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	s2, err := semaphore.Init(mem[semaphore.Size:], 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	return path, s1, s2
}

func BenchmarkW3SemaphorePingPong(b *testing.B) {
	forPaths(b, func(b *testing.B, env []string) {
		path, s1, s2 := w3Sems(b)
		c := proctest.StartOpts(b, "ping", proctest.Options{Args: []string{"w3", path, strconv.Itoa(b.N)}, Env: env})
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			s1.Release(1)
			if err := s2.Acquire(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		c.WaitOK()
	})
}

// BenchmarkW3FromSpinFloor is W3 on the default path with both processes'
// spin budgets at their floor at the start, as after a burst of spins that
// ran out (a descheduled peer). Two processes waiting on each other used to
// stay there, sleeping on every round trip (a median of 5-9 µs instead of
// about 0.3 µs); the budget's probes must bring them back. It reports the
// median round trip (p50-ns) beside the mean.
func BenchmarkW3FromSpinFloor(b *testing.B) {
	path, s1, s2 := w3Sems(b)
	futex.SpinFloor()
	c := proctest.StartOpts(b, "ping", proctest.Options{Args: []string{"w3", path, strconv.Itoa(b.N)}, Env: []string{"MPIPC_TEST_SPIN_FLOOR=1"}})
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		s1.Release(1)
		if err := s2.Acquire(context.Background()); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t)
	}
	b.StopTimer()
	c.WaitOK()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
}

func peerW3(mem []byte, n int) error {
	s1, err := semaphore.Attach(mem[:semaphore.Size], nil)
	if err != nil {
		return err
	}
	s2, err := semaphore.Attach(mem[semaphore.Size:], nil)
	if err != nil {
		return err
	}
	for range n {
		if err := s1.Acquire(context.Background()); err != nil {
			return err
		}
		s2.Release(1)
	}
	return nil
}

func BenchmarkW8QueueRequestResponse(b *testing.B) {
	forPaths(b, func(b *testing.B, env []string) {
		size := ringbuf.SizeOf(64, 64)
		path, mem := mapShared(b, 2*size)
		req, err := ringbuf.Init(mem[:size], 64, 64, nil)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := ringbuf.Init(mem[size:], 64, 64, nil)
		if err != nil {
			b.Fatal(err)
		}
		c := proctest.StartOpts(b, "ping", proctest.Options{Args: []string{"w8", path, strconv.Itoa(b.N)}, Env: env})
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := req.Put(context.Background(), msg); err != nil {
				b.Fatal(err)
			}
			if _, err := resp.GetInto(context.Background(), buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		c.WaitOK()
	})
}

func peerW8(mem []byte, n int) error {
	size := len(mem) / 2
	req, err := ringbuf.Attach(mem[:size], nil)
	if err != nil {
		return err
	}
	resp, err := ringbuf.Attach(mem[size:], nil)
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	for range n {
		m, err := req.GetInto(context.Background(), buf)
		if err != nil {
			return err
		}
		if err := resp.Put(context.Background(), buf[:m]); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkWakeOne: n goroutines each blocked on its own semaphore; each
// iteration releases one, chosen in turn, and measures the time from the
// Release to the moment its goroutine returns from Acquire. Reported:
// median and 99th percentile wake latency. The legacy path stops at 1,000
// blocked goroutines (it holds a thread for each).
func BenchmarkWakeOne(b *testing.B) {
	for _, c := range []struct {
		hub bool
		n   int
	}{{true, 1}, {true, 10000}, {false, 1}, {false, 1000}} {
		name := "legacy"
		if c.hub {
			name = "hub"
		}
		b.Run(name+"/among-"+strconv.Itoa(c.n), func(b *testing.B) {
			restore, ok := futex.SetHub(c.hub)
			defer restore()
			if !ok {
				b.Skip("kernel lacks futex_waitv")
			}
			wakeOne(b, c.n)
		})
	}
}

// settle is the pause between rounds, after the woken goroutine is back
// in Acquire, so that each wake finds the waiting threads asleep.
const settle = time.Millisecond

func wakeOne(b *testing.B, n int) {
	_, mem := mapShared(b, n*semaphore.Size)
	sems := make([]*semaphore.Semaphore, n)
	woke := make([]atomic.Int64, n)
	ack := make(chan int, 1)
	stop := make(chan struct{})
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range sems {
		s, err := semaphore.Init(mem[i*semaphore.Size:(i+1)*semaphore.Size], 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		sems[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := s.Acquire(context.Background()); err != nil {
					return
				}
				woke[i].Store(int64(time.Since(t0)))
				select {
				case <-stop:
					return
				default:
				}
				select {
				case <-stop:
					return
				case ack <- i:
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // all asleep
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for k := range b.N {
		i := (k * 7919) % n
		start := time.Since(t0)
		sems[i].Release(1)
		if j := <-ack; j != i {
			b.Fatalf("released %d, %d woke", i, j)
		}
		lat = append(lat, time.Duration(woke[i].Load())-start)
		// Let the woken goroutine go back to sleep before the next round.
		for sems[i].State().Waiters == false && k+1 < b.N {
			time.Sleep(20 * time.Microsecond)
		}
		time.Sleep(settle)
	}
	b.StopTimer()
	close(stop)
	for _, s := range sems {
		s.Release(1)
	}
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-wake-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-wake-ns")
}
