//go:build linux

package ringbuf_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mpipc/mpipc/ringbuf"
)

// A duplex pipe in memory the caller owns. Across processes the memory is
// a MAP_SHARED mapping of one file, and each process takes one end: the
// creator end 0 (InitPipe or CreatePipe), the other end 1 (AttachPipe or
// OpenPipe).
func ExampleInitPipe() {
	mem := make([]byte, ringbuf.PipeSizeOf(nil))
	parent, err := ringbuf.InitPipe(mem, nil)
	if err != nil {
		panic(err)
	}
	child, err := ringbuf.AttachPipe(mem, 1, nil)
	if err != nil {
		panic(err)
	}

	if err := parent.Send(context.Background(), []byte("ping")); err != nil {
		panic(err)
	}
	buf := make([]byte, 64)
	n, _ := child.Recv(context.Background(), buf) // into buf: no allocation
	fmt.Printf("child got %q\n", buf[:n])

	child.Send(context.Background(), []byte("pong"))
	reply, _ := parent.RecvBytes(context.Background()) // a new slice of the exact size
	fmt.Printf("parent got %q\n", reply)

	// Closing an end: the peer drains what was sent, then sees io.EOF.
	child.Send(context.Background(), []byte("bye"))
	child.Close()
	for {
		msg, err := parent.RecvBytes(context.Background())
		if err == io.EOF {
			fmt.Println("end of stream")
			break
		}
		fmt.Printf("parent got %q\n", msg)
	}
	fmt.Println(errors.Is(parent.Send(context.Background(), []byte("x")), ringbuf.ErrPeerGone))
	// Output:
	// child got "ping"
	// parent got "pong"
	// parent got "bye"
	// end of stream
	// true
}

// A one-way pipe, Python's Pipe(duplex=False): end 0 receives, end 1
// sends. Poll waits for a message without taking it.
func ExampleConn_Poll() {
	opts := &ringbuf.PipeOptions{OneWay: true, Capacity: 4096}
	mem := make([]byte, ringbuf.PipeSizeOf(opts))
	r, _ := ringbuf.InitPipe(mem, opts)
	w, _ := ringbuf.AttachPipe(mem, 1, opts)

	ready, _ := r.Poll(10 * time.Millisecond)
	fmt.Println("ready before send:", ready)
	w.Send(context.Background(), []byte("data"))
	ready, _ = r.Poll(10 * time.Millisecond)
	fmt.Println("ready after send:", ready)
	_, err := w.TryRecv(make([]byte, 8))
	fmt.Println(err)
	// Output:
	// ready before send: false
	// ready after send: true
	// ringbuf: pipe end is send-only
}

// A message longer than the ring travels in pieces: the ring size is a
// throughput choice, not a limit. RecvBytesMax refuses (and consumes) a
// message longer than its maxLength, as Python's recv_bytes(maxlength).
func ExampleConn_RecvBytesMax() {
	opts := &ringbuf.PipeOptions{OneWay: true, Capacity: 4096}
	mem := make([]byte, ringbuf.PipeSizeOf(opts))
	r, _ := ringbuf.InitPipe(mem, opts)
	w, _ := ringbuf.AttachPipe(mem, 1, opts)
	fmt.Println(r.Readable(), r.Writable(), w.Readable(), w.Writable())

	go func() {
		w.Send(context.Background(), make([]byte, 1<<20)) // 1 MiB through 4 KiB
		w.Send(context.Background(), make([]byte, 1<<20))
		w.Close()
	}()
	big, _ := r.RecvBytes(context.Background())
	fmt.Println("received", len(big), "bytes")
	_, err := r.RecvBytesMax(context.Background(), 1000)
	fmt.Println(errors.Is(err, ringbuf.ErrMaxLength))
	_, err = r.RecvBytes(context.Background())
	fmt.Println(err, w.Closed())
	// Output:
	// true false false true
	// received 1048576 bytes
	// true
	// EOF true
}
