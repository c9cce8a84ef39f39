package bench

import (
	"context"
	"fmt"

	"github.com/mpipc/mpipc/ringbuf"
)

// mpipc-queue: ringbuf's MPMC Queue, with the C rings' geometry: 1024 slots
// of 64 bytes, 256 slots of 4 KiB.
//
// W6, W6-4KiB: one producer process, one consumer process.
// W7: two producers and two consumers on one queue; W7-4x4, W7-8x8: four
// and eight of each.
// W13-…: W6 at queue capacities 2 … 1M.
// W8: two queues, request and response.

// queueConn adapts a Queue to msgConn.
type queueConn struct{ q *ringbuf.Queue }

func (c queueConn) send(b []byte) error { return c.q.Put(context.Background(), b) }

func (c queueConn) recv(b []byte) error {
	n, err := c.q.GetInto(context.Background(), b)
	if err == nil && n != len(b) {
		err = mismatch("message of %d bytes, want %d", n, len(b))
	}
	return err
}

// queues returns the Init and the per-worker Attach of k queues laid out
// one after the other.
func queues(k, capacity, maxMsg int) (size int, init func([]byte) error, attach func([]byte) ([]msgConn, error)) {
	one := (ringbuf.SizeOf(capacity, maxMsg) + 63) &^ 63
	init = func(mem []byte) error {
		for i := range k {
			if _, err := ringbuf.Init(mem[i*one:(i+1)*one], capacity, maxMsg, nil); err != nil {
				return err
			}
		}
		return nil
	}
	attach = func(mem []byte) ([]msgConn, error) {
		var cs []msgConn
		for i := range k {
			q, err := ringbuf.Attach(mem[i*one:(i+1)*one], nil)
			if err != nil {
				return nil, err
			}
			cs = append(cs, queueConn{q})
		}
		return cs, nil
	}
	return k * one, init, attach
}

func init() {
	for _, size := range []int{64, 4096} {
		wl, n, slots := "W6", int64(10_000_000), 1024
		if size == 4096 {
			wl, n, slots = "W6-4KiB", 3_000_000, 256
		}
		total, qinit, attach := queues(1, slots, size)
		addProc(procCase{
			Workload: wl, System: "mpipc-queue", BaseN: n, Procs: 2,
			Size: total, Init: qinit,
			Worker: func(w *Worker) (func() error, error) {
				cs, err := attach(w.Objects())
				if err != nil {
					return nil, err
				}
				return func() error { return spsc(w, cs[0], size) }, nil
			},
			Check:   checkReceived,
			Metrics: throughput(size),
		})
	}

	// W7 and its scale forms: P producers + P consumers on one queue of
	// 1024 slots (W7-8x8 runs 16 processes, oversubscribing any small
	// machine: it shows whether throughput degrades gracefully).
	for _, pairs := range []int{w7Pairs, 4, 8} {
		wl := "W7"
		if pairs != w7Pairs {
			wl = fmt.Sprintf("W7-%dx%d", pairs, pairs)
		}
		total, qinit, attach := queues(1, 1024, 64)
		addProc(procCase{
			Workload: wl, System: "mpipc-queue", BaseN: 5_000_000, Procs: 2 * pairs,
			Size: total, Init: qinit,
			Worker: func(w *Worker) (func() error, error) {
				cs, err := attach(w.Objects())
				if err != nil {
					return nil, err
				}
				w.N = w7N(w.N, pairs)
				return func() error { return mpmc(w, cs[0]) }, nil
			},
			Check:   checkMPMC(pairs),
			Metrics: w7Metrics(pairs),
		})
	}

	// W13: W6 (one producer, one consumer, 64-byte messages) at queue
	// capacities from 2 to 1M slots: throughput against capacity. The
	// capacity is in the workload's name (W13-1024 is W6's geometry).
	for _, slots := range []int{2, 64, 1024, 65536, 1 << 20} {
		name := fmt.Sprint(slots)
		if slots == 1<<20 {
			name = "1M"
		}
		n := int64(5_000_000)
		if slots == 2 { // every message a hand-off: about 100 times slower here
			n = 100_000
		}
		total, qinit, attach := queues(1, slots, 64)
		addProc(procCase{
			Workload: "W13-" + name, System: "mpipc-queue", BaseN: n, Procs: 2,
			Size: total, Init: qinit,
			Worker: func(w *Worker) (func() error, error) {
				cs, err := attach(w.Objects())
				if err != nil {
					return nil, err
				}
				return func() error { return spsc(w, cs[0], 64) }, nil
			},
			Check:   checkReceived,
			Metrics: throughput(64),
		})
	}

	total2, qinit2, attach2 := queues(2, 1024, 64)
	addProc(procCase{
		Workload: "W8", System: "mpipc-queue", BaseN: 300_000, Procs: 2,
		Size: total2, Init: qinit2,
		Worker: func(w *Worker) (func() error, error) {
			cs, err := attach2(w.Objects())
			if err != nil {
				return nil, err
			}
			return func() error { return reqResp(w, cs[0], cs[1]) }, nil
		},
		Check:   checkLatencies,
		Metrics: latencies,
	})
}
