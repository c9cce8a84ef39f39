package bench

import (
	"context"
	"github.com/mpipc/mpipc/ringbuf"
)

// mpipc-pipe: ringbuf's Pipe (two SPSC byte rings).
//
// W6, W6-4KiB: a one-way pipe, as Python's Pipe(duplex=False); worker 0
// sends on end 1, worker 1 receives on end 0. Ring of 64 KiB for 64-byte
// messages and 1 MiB for 4 KiB ones (the C rings' 1024 × 64 B and 256 × 4 KiB).
//
// W8: a duplex pipe; the client (worker 0) holds end 0, the server end 1.

// pipeConn adapts a pipe end to msgConn.
type pipeConn struct{ c *ringbuf.Conn }

func (p pipeConn) send(b []byte) error { return p.c.Send(context.Background(), b) }

func (p pipeConn) recv(b []byte) error {
	n, err := p.c.Recv(context.Background(), b)
	if err == nil && n != len(b) {
		err = mismatch("message of %d bytes, want %d", n, len(b))
	}
	return err
}

// pipeInit sets up a pipe in mem and gives up end 0, so that a worker
// can claim it.
func pipeInit(opts *ringbuf.PipeOptions) func(mem []byte) error {
	return func(mem []byte) error {
		c, err := ringbuf.InitPipe(mem[:ringbuf.PipeSizeOf(opts)], opts)
		if err != nil {
			return err
		}
		return c.Detach()
	}
}

func init() {
	for _, size := range []int{64, 4096} {
		wl, n, opts := "W6", int64(20_000_000), &ringbuf.PipeOptions{Capacity: 64 << 10, OneWay: true}
		if size == 4096 {
			wl, n, opts = "W6-4KiB", 3_000_000, &ringbuf.PipeOptions{Capacity: 1 << 20, OneWay: true}
		}
		addProc(procCase{
			Workload: wl, System: "mpipc-pipe", BaseN: n, Procs: 2,
			Size: ringbuf.PipeSizeOf(opts), Init: pipeInit(opts),
			Worker: func(w *Worker) (func() error, error) {
				end := 1 - w.Idx // the producer sends on end 1
				c, err := ringbuf.AttachPipe(w.Objects()[:ringbuf.PipeSizeOf(opts)], end, nil)
				if err != nil {
					return nil, err
				}
				return func() error { return spsc(w, pipeConn{c}, size) }, nil
			},
			Check:   checkReceived,
			Metrics: throughput(size),
		})
	}

	opts := &ringbuf.PipeOptions{Capacity: 64 << 10}
	addProc(procCase{
		Workload: "W8", System: "mpipc-pipe", BaseN: 300_000, Procs: 2,
		Size: ringbuf.PipeSizeOf(opts), Init: pipeInit(opts),
		Worker: func(w *Worker) (func() error, error) {
			c, err := ringbuf.AttachPipe(w.Objects()[:ringbuf.PipeSizeOf(opts)], w.Idx, nil)
			if err != nil {
				return nil, err
			}
			return func() error { return reqResp(w, pipeConn{c}, pipeConn{c}) }, nil
		},
		Check:   checkLatencies,
		Metrics: latencies,
	})
}
