package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Peers measured in the same run, cgo-free:
//
//	go-sync-mutex      sync.Mutex, in one process (W1; W2 with two goroutines)
//	go-chan            buffered channels between goroutines of one process
//	go-os-pipe         os.Pipe between processes, one write per message
//	go-unix-seqpacket  a socketpair(AF_UNIX, SOCK_SEQPACKET) between processes
//
// In-process peers run in one worker process (procs 1) whose goroutines play
// the roles the processes play in the cross-process cases; they are the
// floor, not competitors: they cannot cross a process boundary.

// inProcess runs fn as procs goroutines, each with its own worker index.
func inProcess(w *Worker, procs int, fn func(w *Worker) error) error {
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wi := *w
		wi.Idx, wi.Procs = i, procs
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(&wi) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// chan64 and chan4k carry messages of up to 64 and 4096 bytes by value.
type chan64 chan [64]byte

func (c chan64) send(b []byte) error {
	var m [64]byte
	copy(m[:], b)
	c <- m
	return nil
}

func (c chan64) recv(b []byte) error {
	m := <-c
	copy(b, m[:])
	return nil
}

type chan4k chan [4096]byte

func (c chan4k) send(b []byte) error {
	var m [4096]byte
	copy(m[:], b)
	c <- m
	return nil
}

func (c chan4k) recv(b []byte) error {
	m := <-c
	copy(b, m[:])
	return nil
}

// pipes returns n pipes as [r0, w0, r1, w1, …].
func pipes(n int) func() ([]*os.File, error) {
	return func() ([]*os.File, error) {
		var fs []*os.File
		for range n {
			r, w, err := os.Pipe()
			if err != nil {
				for _, f := range fs {
					f.Close()
				}
				return nil, fmt.Errorf("os.Pipe: %w", err)
			}
			fs = append(fs, r, w)
		}
		return fs, nil
	}
}

func init() {
	// W1, W2: sync.Mutex.
	addProc(procCase{
		Workload: "W1", System: "go-sync-mutex", BaseN: 100_000_000, Procs: 1,
		Worker: func(w *Worker) (func() error, error) {
			var mu sync.Mutex
			for i := int64(0); i < w.N/10; i++ {
				mu.Lock()
				//lint:ignore SA2001 the lock handoff is what W1 measures
				mu.Unlock()
			}
			return func() error {
				var done int64
				for i := int64(0); i < w.N; i++ {
					mu.Lock()
					//lint:ignore SA2001 the lock handoff is what W1 measures
					mu.Unlock()
					done++
				}
				*w.Result(0) = uint64(done)
				if !mu.TryLock() {
					return mismatch("mutex left locked")
				}
				return nil
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			if got := *sh.result(0); got != uint64(n) {
				return mismatch("loop count %d != %d", got, n)
			}
			return nil
		},
		Metrics: nsPerOp("ns_per_op"),
	})
	addProc(procCase{
		Workload: "W2", System: "go-sync-mutex", BaseN: 15_000_000, Procs: 1,
		Worker: func(w *Worker) (func() error, error) {
			return func() error {
				var mu sync.Mutex
				var c int64
				err := inProcess(w, 2, func(w *Worker) error {
					for i := int64(0); i < w.N; i++ {
						mu.Lock()
						c++
						mu.Unlock()
					}
					return nil
				})
				*w.Result(0) = uint64(c)
				return err
			}, nil
		},
		Check: func(sh *shared, n int64) error {
			if got := *sh.result(0); got != uint64(2*n) {
				return mismatch("count %d != %d", got, 2*n)
			}
			return nil
		},
		Metrics: opsPerSec(2),
	})

	// W3: ping-pong.
	addProc(procCase{
		Workload: "W3", System: "go-chan", BaseN: 1_000_000, Procs: 1,
		Worker: func(w *Worker) (func() error, error) {
			a, b := make(chan64, 1), make(chan64, 1)
			return func() error {
				return inProcess(w, 2, func(w *Worker) error {
					if w.Idx == 0 {
						return pingpong(w, a, b)
					}
					return pingpong(w, b, a)
				})
			}, nil
		},
		Metrics: roundtrips,
	})
	addProc(procCase{
		Workload: "W3", System: "go-os-pipe", BaseN: 50_000, Procs: 2, Files: pipes(2),
		Worker: func(w *Worker) (func() error, error) {
			r1, w1, r2, w2 := w.File(0), w.File(1), w.File(2), w.File(3)
			return func() error {
				if w.Idx == 0 {
					return pingpong(w, streamConn{w1}, streamConn{r2})
				}
				return pingpong(w, streamConn{w2}, streamConn{r1})
			}, nil
		},
		Metrics: roundtrips,
	})
	addProc(procCase{
		Workload: "W3", System: "go-unix-seqpacket", BaseN: 50_000, Procs: 2, Files: seqpacketPair,
		Worker: func(w *Worker) (func() error, error) {
			c := packetConn{w.File(w.Idx)}
			return func() error { return pingpong(w, c, c) }, nil
		},
		Metrics: roundtrips,
	})

	// W6, W6-4KiB: SPSC throughput.
	for _, size := range []int{64, 4096} {
		wl := "W6"
		nChan, nPipe, nSock := int64(10_000_000), int64(3_000_000), int64(1_000_000)
		if size == 4096 {
			wl = "W6-4KiB"
			nChan, nPipe, nSock = 2_000_000, 1_500_000, 500_000
		}
		addProc(procCase{
			Workload: wl, System: "go-chan", BaseN: nChan, Procs: 1,
			Worker: func(w *Worker) (func() error, error) {
				var c msgConn = make(chan64, 1024)
				if size == 4096 {
					c = make(chan4k, 256)
				}
				return func() error {
					return inProcess(w, 2, func(w *Worker) error { return spsc(w, c, size) })
				}, nil
			},
			Check:   checkReceived,
			Metrics: throughput(size),
		})
		addProc(procCase{
			Workload: wl, System: "go-os-pipe", BaseN: nPipe, Procs: 2, Files: pipes(1),
			Worker: func(w *Worker) (func() error, error) {
				c := streamConn{w.File(0)}
				if w.Idx == 0 {
					c = streamConn{w.File(1)}
				}
				return func() error { return spsc(w, c, size) }, nil
			},
			Check:   checkReceived,
			Metrics: throughput(size),
		})
		addProc(procCase{
			Workload: wl, System: "go-unix-seqpacket", BaseN: nSock, Procs: 2, Files: seqpacketPair,
			Worker: func(w *Worker) (func() error, error) {
				c := packetConn{w.File(w.Idx)}
				return func() error { return spsc(w, c, size) }, nil
			},
			Check:   checkReceived,
			Metrics: throughput(size),
		})
	}

	// W7: 2 producers + 2 consumers.
	addProc(procCase{
		Workload: "W7", System: "go-chan", BaseN: 5_000_000, Procs: 1,
		Worker: func(w *Worker) (func() error, error) {
			c := make(chan64, 1024)
			w.N = w7N(w.N, w7Pairs)
			return func() error {
				return inProcess(w, 2*w7Pairs, func(w *Worker) error { return mpmc(w, c) })
			}, nil
		},
		Check:   checkMPMC(w7Pairs),
		Metrics: w7Metrics(w7Pairs),
	})
	addProc(procCase{
		Workload: "W7", System: "go-os-pipe", BaseN: 1_500_000, Procs: 2 * w7Pairs, Files: pipes(1),
		Worker: func(w *Worker) (func() error, error) {
			w.N = w7N(w.N, w7Pairs)
			c := streamConn{w.File(0)} // reads of 64 bytes from 64-byte atomic writes
			if w.Idx < w7Pairs {
				c = streamConn{w.File(1)}
			}
			return func() error { return mpmc(w, c) }, nil
		},
		Check:   checkMPMC(w7Pairs),
		Metrics: w7Metrics(w7Pairs),
	})

	// W8: request/response latency.
	addProc(procCase{
		Workload: "W8", System: "go-chan", BaseN: 200_000, Procs: 1,
		Worker: func(w *Worker) (func() error, error) {
			req, rsp := make(chan64, 1), make(chan64, 1)
			return func() error {
				return inProcess(w, 2, func(w *Worker) error { return reqResp(w, req, rsp) })
			}, nil
		},
		Check:   checkLatencies,
		Metrics: latencies,
	})
	addProc(procCase{
		Workload: "W8", System: "go-os-pipe", BaseN: 50_000, Procs: 2, Files: pipes(2),
		Worker: func(w *Worker) (func() error, error) {
			req := streamConn{w.File(1)}
			rsp := streamConn{w.File(2)}
			if w.Idx == 1 {
				req, rsp = streamConn{w.File(0)}, streamConn{w.File(3)}
			}
			return func() error { return reqResp(w, req, rsp) }, nil
		},
		Check:   checkLatencies,
		Metrics: latencies,
	})
	addProc(procCase{
		Workload: "W8", System: "go-unix-seqpacket", BaseN: 50_000, Procs: 2, Files: seqpacketPair,
		Worker: func(w *Worker) (func() error, error) {
			c := packetConn{w.File(w.Idx)}
			return func() error { return reqResp(w, c, c) }, nil
		},
		Check:   checkLatencies,
		Metrics: latencies,
	})
}
