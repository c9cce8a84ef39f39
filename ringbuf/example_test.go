//go:build linux

package ringbuf_test

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/mpipc/mpipc/ringbuf"
)

// aligned returns n bytes of 64-byte aligned memory. Across processes the
// memory is a shared mapping (or a segment: ringbuf.Create, ringbuf.Open).
func aligned(n int) []byte {
	b := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	return b[off : off+n]
}

func ExampleQueue() {
	mem := aligned(ringbuf.SizeOf(8, 64))
	q, err := ringbuf.Init(mem, 8, 64, nil)
	if err != nil {
		panic(err)
	}
	for _, m := range []string{"A", "B", "C"} {
		q.Put(context.Background(), []byte(m))
	}
	q.Shutdown(false)
	buf := make([]byte, q.MaxMsgSize())
	for {
		n, err := q.GetInto(context.Background(), buf)
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(string(buf[:n]))
	}
	// Output:
	// A
	// B
	// C
	// ringbuf: queue shut down
}

func ExampleQueue_Reserve() {
	q, _ := ringbuf.Init(aligned(ringbuf.SizeOf(4, 32)), 4, 32, nil)
	r, _ := q.Reserve(context.Background(), 5)
	copy(r.Bytes(), "hello") // written in place, in the queue's memory
	r.Commit()
	b, _ := q.Borrow(context.Background())
	fmt.Println(string(b.Bytes())) // read in place
	b.Release()
	// Output: hello
}

func ExampleTyped() {
	type point struct{ X, Y float64 }
	q, _ := ringbuf.InitTyped[point](aligned(ringbuf.SizeOfTyped[point](4)), 4, nil)
	q.Put(context.Background(), point{1, 2})
	p, _ := q.Get(context.Background())
	fmt.Println(p.X, p.Y)
	// Output: 1 2
}

func ExampleJoinableQueue() {
	q, _ := ringbuf.InitJoinable(aligned(ringbuf.SizeOfJoinable(16, 16)), 16, 16, nil)
	for i := range 3 {
		q.Put(context.Background(), []byte{byte(i)})
	}
	for range 3 {
		q.Get(context.Background())
		q.TaskDone()
	}
	q.Join(context.Background())
	fmt.Println("all done;", q.TaskDone())
	// Output: all done; ringbuf: task done more times than items taken
}
