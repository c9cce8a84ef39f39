package bench

import (
	"context"
	"github.com/mpipc/mpipc/ringbuf"
)

// mpipc-queue: ringbuf's MPMC Queue, with the C rings' geometry: 1024 slots
// of 64 bytes, 256 slots of 4 KiB.
//
// W6, W6-4KiB: one producer process, one consumer process.
// W7: two producers and two consumers on one queue.
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

	total, qinit, attach := queues(1, 1024, 64)
	addProc(procCase{
		Workload: "W7", System: "mpipc-queue", BaseN: 5_000_000, Procs: w7Producers + w7Consumers,
		Size: total, Init: qinit,
		Worker: func(w *Worker) (func() error, error) {
			cs, err := attach(w.Objects())
			if err != nil {
				return nil, err
			}
			w.N = w7N(w.N)
			return func() error { return mpmc(w, cs[0]) }, nil
		},
		Check:   checkMPMC,
		Metrics: w7Metrics,
	})

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
