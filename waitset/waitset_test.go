//go:build linux

package waitset_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/waitset"
)

var messages = flag.Int("waitset.messages", 0, "messages in the cross-process conservation test (0: 100,000; 20,000 under -short)")

func TestMain(m *testing.M) {
	proctest.Register("producer", roleProducer)
	proctest.Register("consumer", roleConsumer)
	proctest.Main(m)
}

func newSeg(tb testing.TB) *shm.Segment {
	tb.Helper()
	seg, err := shm.Create(proctest.TempName(tb), &shm.Options{Size: 8 << 20, MaxObjects: 256})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { seg.Close() })
	return seg
}

func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func TestSelectReportsTheReadyObject(t *testing.T) {
	seg := newSeg(t)
	e := must(event.Create(seg, "e", nil))(t)
	s := must(semaphore.Create(seg, "s", 0, nil))(t)
	q := must(ringbuf.Create(seg, "q", 4, 16, nil))(t)
	buf := make([]byte, 16)
	get := waitset.Get(q, buf)
	cases := []waitset.Case{waitset.EventSet(e), waitset.Acquire(s), get}

	if i, err := waitset.TrySelect(cases...); i != -1 || err != nil {
		t.Fatalf("TrySelect on nothing ready = %d, %v", i, err)
	}
	for _, tc := range []struct {
		want int
		make func()
	}{
		{1, func() { s.Release(1) }},
		{2, func() { q.Put(context.Background(), []byte("hello")) }},
		{0, e.Set},
	} {
		res := make(chan int, 1)
		go func() {
			i, err := waitset.Select(context.Background(), cases...)
			if err != nil {
				t.Error(err)
			}
			res <- i
		}()
		select {
		case i := <-res:
			t.Fatalf("Select returned %d before anything was ready", i)
		case <-time.After(30 * time.Millisecond):
		}
		tc.make()
		if i := <-res; i != tc.want {
			t.Fatalf("Select = %d, want %d", i, tc.want)
		}
	}
	if s.Value() != 0 {
		t.Fatalf("Acquire case left the semaphore at %d", s.Value())
	}
	if string(get.Msg()) != "hello" || !q.Empty() {
		t.Fatalf("Get case got %q; queue empty %v", get.Msg(), q.Empty())
	}
	// Report-only cases take nothing.
	s.Release(1)
	if i, _ := waitset.TrySelect(waitset.Acquirable(s)); i != 0 || s.Value() != 1 {
		t.Fatalf("Acquirable: %d, value %d", i, s.Value())
	}
	q.Put(context.Background(), []byte("x"))
	if i, _ := waitset.TrySelect(waitset.Readable(q)); i != 0 || q.Len() != 1 {
		t.Fatalf("Readable: %d, len %d", i, q.Len())
	}
}

func TestSelectTimeoutNeverEarly(t *testing.T) {
	seg := newSeg(t)
	e := must(event.Create(seg, "e", nil))(t)
	s := must(semaphore.Create(seg, "s", 0, nil))(t)
	for range 200 {
		d := time.Duration(1+time.Now().UnixNano()%3000) * time.Microsecond
		start := time.Now()
		i, err := waitset.SelectTimeout(d, waitset.EventSet(e), waitset.Acquire(s))
		if el := time.Since(start); i != -1 || err != nil || el < d {
			t.Fatalf("SelectTimeout(%v) = %d, %v after %v", d, i, err, el)
		}
	}
	// A timeout too large to represent waits.
	res := make(chan int, 1)
	go func() {
		i, _ := waitset.SelectTimeout(math.MaxInt64, waitset.EventSet(e))
		res <- i
	}()
	select {
	case i := <-res:
		t.Fatalf("SelectTimeout(math.MaxInt64) returned %d at once", i)
	case <-time.After(50 * time.Millisecond):
	}
	e.Set()
	if i := <-res; i != 0 {
		t.Fatalf("got %d", i)
	}
}

func TestSelectCancel(t *testing.T) {
	seg := newSeg(t)
	e := must(event.Create(seg, "e", nil))(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := waitset.Select(ctx, waitset.EventSet(e))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("cancellation took %v", el)
	}
}

func TestSelectReportsCaseError(t *testing.T) {
	seg := newSeg(t)
	q := must(ringbuf.Create(seg, "q", 4, 16, nil))(t)
	q.Put(context.Background(), []byte("a message too long"[:16]))
	i, err := waitset.TrySelect(waitset.Get(q, make([]byte, 4)))
	if i != 0 || !errors.Is(err, ringbuf.ErrShortBuffer) {
		t.Fatalf("TrySelect = %d, %v; want 0, ErrShortBuffer", i, err)
	}
}

func TestReadyChannel(t *testing.T) {
	seg := newSeg(t)
	e := must(event.Create(seg, "e", nil))(t)
	ch, stop := waitset.Ready(waitset.EventSet(e))
	defer stop()
	select {
	case i := <-ch:
		t.Fatalf("ready %d before Set", i)
	case <-time.After(20 * time.Millisecond):
	}
	e.Set()
	select {
	case i := <-ch:
		if i != 0 {
			t.Fatalf("got %d", i)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ready never delivered")
	}
	// stop ends a wait that never completes; the channel closes.
	e2 := must(event.Create(seg, "e2", nil))(t)
	ch, stop = waitset.Ready(waitset.EventSet(e2))
	stop()
	if _, ok := <-ch; ok {
		t.Fatal("stopped Ready delivered an index")
	}
}

// The cross-process conservation test: 2 producer processes spread
// messages over 100 queues; 2 consumer processes Select over the 100
// queues and a "producers done" event; each message carries its id, and
// consumers count each id they get in a shared table: every id must be
// counted exactly once.

const (
	nQueues  = 100
	nEvents  = 4
	producer = 2
	consumer = 2
)

func TestConservationAcrossProcesses(t *testing.T) {
	for _, mode := range []string{"hub", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "hub" && !futex.Hub() {
				t.Skip("the kernel lacks futex_waitv")
			}
			conservation(t, mode)
		})
	}
}

func conservation(t *testing.T, mode string) {
	n := *messages
	if n == 0 {
		n = 100000
		if testing.Short() {
			n = 20000
		}
	}
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 16 << 20, MaxObjects: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	for i := range nQueues {
		must(ringbuf.Create(seg, "q"+strconv.Itoa(i), 64, 8, nil))(t)
	}
	for i := range nEvents {
		must(event.Create(seg, "e"+strconv.Itoa(i), nil))(t)
	}
	done := must(event.Create(seg, "done", nil))(t)
	tablePath, table := proctest.SharedFile(t, 4*n)
	seen := unsafe.Slice((*uint32)(unsafe.Pointer(&table[0])), n)

	env := []string{"MPIPC_FUTEX=" + mode}
	var cons []*proctest.Child
	for range consumer {
		cons = append(cons, proctest.StartOpts(t, "consumer", proctest.Options{
			Args: []string{seg.Path(), tablePath, strconv.Itoa(n)}, Env: env}))
	}
	var prods []*proctest.Child
	for p := range producer {
		prods = append(prods, proctest.StartOpts(t, "producer", proctest.Options{
			Args: []string{seg.Path(), strconv.Itoa(p), strconv.Itoa(n)}, Env: env}))
	}
	for _, c := range prods {
		c.WaitOK()
	}
	done.Set()
	var got int
	for _, c := range cons {
		out := c.WaitOK()
		var k int
		if _, err := fmt.Sscanf(out, "got %d", &k); err != nil {
			t.Fatalf("consumer said %q", out)
		}
		got += k
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %d seen %d times", id, c)
		}
	}
	if got != n {
		t.Fatalf("consumers got %d messages, want %d", got, n)
	}
}

// roleProducer puts the ids p, p+producer, ... below n, each on a queue
// picked by the id, waiting with Select for room on its queue.
func roleProducer(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	p, _ := strconv.Atoi(args[1])
	n, _ := strconv.Atoi(args[2])
	qs := make([]*ringbuf.Queue, nQueues)
	for i := range qs {
		if qs[i], err = ringbuf.Open(seg, "q"+strconv.Itoa(i), nil); err != nil {
			return err
		}
	}
	var msg [8]byte
	for id := p; id < n; id += producer {
		binary.LittleEndian.PutUint64(msg[:], uint64(id))
		q := qs[(id*7919)%nQueues]
		if i, err := waitset.SelectTimeout(time.Minute, waitset.Put(q, msg[:])); i != 0 || err != nil {
			return fmt.Errorf("put %d: %d, %v", id, i, err)
		}
	}
	return nil
}

// roleConsumer gets from any of the queues until "done" is set and the
// queues are drained, counting each id in the shared table.
func roleConsumer(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	table, err := proctest.MapFile(args[1])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[2])
	seen := unsafe.Slice((*uint32)(unsafe.Pointer(&table[0])), n)
	var cases []waitset.Case
	var gets []*waitset.GetCase
	for i := range nQueues {
		q, err := ringbuf.Open(seg, "q"+strconv.Itoa(i), nil)
		if err != nil {
			return err
		}
		g := waitset.Get(q, make([]byte, 8))
		gets = append(gets, g)
		cases = append(cases, g)
	}
	for i := range nEvents { // never set: events that are not ready must not be reported
		e, err := event.Open(seg, "e"+strconv.Itoa(i), nil)
		if err != nil {
			return err
		}
		cases = append(cases, waitset.EventSet(e))
	}
	done, err := event.Open(seg, "done", nil)
	if err != nil {
		return err
	}
	cases = append(cases, waitset.EventSet(done))
	got := 0
	take := func(i int) error {
		if i >= nQueues {
			return fmt.Errorf("case %d reported ready", i)
		}
		id := binary.LittleEndian.Uint64(gets[i].Msg())
		if id >= uint64(n) {
			return fmt.Errorf("message id %d out of range", id)
		}
		atomic.AddUint32(&seen[id], 1)
		got++
		return nil
	}
	for {
		i, err := waitset.SelectTimeout(time.Minute, cases...)
		if err != nil || i < 0 {
			return fmt.Errorf("select: %d, %v", i, err)
		}
		if i == len(cases)-1 { // done: drain what is left
			for {
				i, err := waitset.TrySelect(cases[:nQueues]...)
				if err != nil {
					return err
				}
				if i < 0 {
					fmt.Printf("got %d\n", got)
					return nil
				}
				if err := take(i); err != nil {
					return err
				}
			}
		}
		if err := take(i); err != nil {
			return err
		}
	}
}

// TestSelectQueueShutdown: a Shutdown wakes a Select waiting to get or put
// on the queue, which then reports ErrShutdown; Readable and Writable are
// ready on a shut-down queue. Another handle's Close wakes nobody for
// good: the Select goes on waiting.
func TestSelectQueueShutdown(t *testing.T) {
	seg := newSeg(t)
	q := must(ringbuf.Create(seg, "q", 3, 16, nil))(t)
	other := must(ringbuf.Open(seg, "q", nil))(t)
	type res struct {
		i   int
		err error
	}
	done := make(chan res, 1)
	go func() {
		i, err := waitset.Select(context.Background(), waitset.Get(q, make([]byte, 16)))
		done <- res{i, err}
	}()
	time.Sleep(20 * time.Millisecond)
	other.Close()
	select {
	case r := <-done:
		t.Fatalf("Select returned after another handle's Close: %d %v", r.i, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	q2 := must(ringbuf.Open(seg, "q", nil))(t)
	q2.Shutdown(false)
	select {
	case r := <-done:
		if r.i != 0 || !errors.Is(r.err, ringbuf.ErrShutdown) {
			t.Fatalf("Select after Shutdown = %d, %v; want 0, ErrShutdown", r.i, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not wake the Select")
	}
	if i, err := waitset.TrySelect(waitset.Readable(q)); i != 0 || err != nil {
		t.Fatalf("Readable on a shut-down queue: %d %v", i, err)
	}
	if i, err := waitset.TrySelect(waitset.Put(q, []byte("x"))); i != 0 || !errors.Is(err, ringbuf.ErrShutdown) {
		t.Fatalf("Put case on a shut-down queue: %d %v", i, err)
	}
}
