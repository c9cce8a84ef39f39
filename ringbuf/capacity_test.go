//go:build linux

package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

func init() {
	roles["q-cap-fill"] = qRoleCapFill
	roles["q-cap-race"] = qRoleCapRace
}

// qCapOps is the part of a queue's API the capacity tests drive, for the
// plain, joinable and typed queues alike.
type qCapOps struct {
	q       *Queue
	tryPut  func() error
	putWait func(d time.Duration) error
	tryGet  func() error
}

func qCapKinds(t *testing.T, capacity int) map[string]qCapOps {
	t.Helper()
	plain := qNew(t, capacity, 8, nil)
	jmem := qAligned(SizeOfJoinable(capacity, 8))
	jq, err := InitJoinable(jmem, capacity, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmem := qAligned(SizeOfTyped[uint64](capacity))
	tq, err := InitTyped[uint64](tmem, capacity, nil)
	if err != nil {
		t.Fatal(err)
	}
	bytesOps := func(q *Queue) qCapOps {
		return qCapOps{q: q,
			tryPut:  func() error { return q.TryPut([]byte("m")) },
			putWait: func(d time.Duration) error { return q.PutTimeout([]byte("m"), d) },
			tryGet:  func() error { _, err := q.TryGet(); return err },
		}
	}
	return map[string]qCapOps{
		"Queue":         bytesOps(plain),
		"JoinableQueue": bytesOps(jq.Queue),
		"Typed": {q: tq.Queue,
			tryPut:  func() error { return tq.TryPut(7) },
			putWait: func(d time.Duration) error { return tq.PutTimeout(7, d) },
			tryGet:  func() error { _, err := tq.TryGet(); return err },
		},
	}
}

// qCapCheckFull fails unless q holds exactly capacity messages and
// refuses one more, trying and waiting.
func qCapCheckFull(t *testing.T, name string, o qCapOps, capacity int) {
	t.Helper()
	if n := o.q.Len(); n != capacity || !o.q.Full() || o.q.Empty() {
		t.Fatalf("%s: at capacity %d: Len %d Full %v Empty %v", name, capacity, n, o.q.Full(), o.q.Empty())
	}
	if err := o.tryPut(); !errors.Is(err, ErrFull) {
		t.Fatalf("%s: TryPut beyond capacity %d: %v, want ErrFull", name, capacity, err)
	}
	if err := o.putWait(5 * time.Millisecond); !errors.Is(err, ErrFull) {
		t.Fatalf("%s: PutTimeout beyond capacity %d: %v, want ErrFull", name, capacity, err)
	}
}

// TestQueueAnyCapacity: capacities that are not powers of two (and 1) hold
// exactly that many messages, lap after lap, for every kind of queue.
func TestQueueAnyCapacity(t *testing.T) {
	for _, capacity := range []int{1, 3, 6, 1000} {
		for name, o := range qCapKinds(t, capacity) {
			name = fmt.Sprintf("%s(%d)", name, capacity)
			if o.q.Cap() != capacity || o.q.State().Cap != capacity {
				t.Fatalf("%s: Cap %d, State.Cap %d", name, o.q.Cap(), o.q.State().Cap)
			}
			for i := range capacity {
				if o.q.Full() {
					t.Fatalf("%s: Full with %d messages", name, i)
				}
				if err := o.tryPut(); err != nil {
					t.Fatalf("%s: put %d: %v", name, i, err)
				}
				if n := o.q.Len(); n != i+1 {
					t.Fatalf("%s: Len %d after %d puts", name, n, i+1)
				}
			}
			qCapCheckFull(t, name, o, capacity)
			// Lap after lap, across the ring's wrap: one out, one in, and
			// the limit still holds.
			for i := range 3*capacity + 5 {
				if err := o.tryGet(); err != nil {
					t.Fatalf("%s: get %d: %v", name, i, err)
				}
				if n := o.q.Len(); n != capacity-1 || o.q.Full() {
					t.Fatalf("%s: after a get: Len %d Full %v", name, n, o.q.Full())
				}
				if err := o.tryPut(); err != nil {
					t.Fatalf("%s: put after get %d: %v", name, i, err)
				}
				if err := o.tryPut(); !errors.Is(err, ErrFull) {
					t.Fatalf("%s: second put after get %d: %v, want ErrFull", name, i, err)
				}
			}
			qCapCheckFull(t, name, o, capacity)
			for i := range capacity {
				if err := o.tryGet(); err != nil {
					t.Fatalf("%s: drain %d: %v", name, i, err)
				}
			}
			if err := o.tryGet(); !errors.Is(err, ErrEmpty) || !o.q.Empty() || o.q.Len() != 0 {
				t.Fatalf("%s: drained: %v, Len %d", name, err, o.q.Len())
			}
		}
	}
}

// TestQueueCapacityBlocks: a Put into a queue holding capacity messages
// blocks until a Get makes room, and then completes.
func TestQueueCapacityBlocks(t *testing.T) {
	for _, capacity := range []int{1, 3, 6, 1000} {
		q := qNew(t, capacity, 8, nil)
		for range capacity {
			if err := q.TryPut([]byte("m")); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- q.Put(context.Background(), []byte("last")) }()
		select {
		case err := <-done:
			t.Fatalf("capacity %d: Put into a full queue returned %v", capacity, err)
		case <-time.After(30 * time.Millisecond):
		}
		if _, err := q.TryGet(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("capacity %d: blocked Put: %v", capacity, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("capacity %d: Put still blocked after a Get", capacity)
		}
		if q.Len() != capacity || !q.Full() {
			t.Fatalf("capacity %d: Len %d Full %v", capacity, q.Len(), q.Full())
		}
	}
}

func TestQueueDefaultCapacity(t *testing.T) {
	for _, c := range []int{0, -1} {
		q := qNew(t, c, 0, nil)
		if q.Cap() != DefaultCapacity {
			t.Fatalf("capacity %d: Cap %d, want DefaultCapacity %d", c, q.Cap(), DefaultCapacity)
		}
		for i := range DefaultCapacity {
			if err := q.TryPut(nil); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
		}
		if err := q.TryPut(nil); !errors.Is(err, ErrFull) {
			t.Fatalf("put beyond DefaultCapacity: %v", err)
		}
	}
}

// q-cap-fill PATH C: fills the queue with C messages (each must go in),
// checks a (C+1)th is refused, prints "filled", then puts "extra",
// blocking until the parent takes one, and prints "put".
func qRoleCapFill(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	c := atoi(args[1])
	for i := range c {
		if err := q.TryPut([]byte(strconv.Itoa(i))); err != nil {
			return fmt.Errorf("put %d of %d: %v", i, c, err)
		}
	}
	if err := q.TryPut([]byte("over")); !errors.Is(err, ErrFull) {
		return fmt.Errorf("put %d into capacity %d: %v, want ErrFull", c+1, c, err)
	}
	if q.Len() != c || !q.Full() {
		return fmt.Errorf("child: Len %d Full %v at capacity %d", q.Len(), q.Full(), c)
	}
	fmt.Println("filled")
	if err := q.Put(context.Background(), []byte("extra")); err != nil {
		return err
	}
	fmt.Println("put")
	return nil
}

// q-cap-race PATH N: tries N TryPuts and prints how many went in.
func qRoleCapRace(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	n := 0
	for range atoi(args[1]) {
		switch err := q.TryPut([]byte("r")); {
		case err == nil:
			n++
		case !errors.Is(err, ErrFull):
			return err
		}
	}
	fmt.Println(n)
	return nil
}

// TestQueueCapacityProcesses: capacities 1 and 6 hold across processes: a
// child fills the queue to exactly the capacity and blocks on one more
// until the parent takes one; two children racing to fill an empty queue
// get exactly capacity messages in between them.
func TestQueueCapacityProcesses(t *testing.T) {
	for _, capacity := range []int{1, 6} {
		mem, path := qTestMap(t, SizeOf(capacity, 8))
		q, err := Init(mem, capacity, 8, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := proctest.Start(t, "q-cap-fill", path, strconv.Itoa(capacity))
		c.Expect("filled", 0)
		if q.Len() != capacity || !q.Full() {
			t.Fatalf("capacity %d: parent sees Len %d Full %v", capacity, q.Len(), q.Full())
		}
		if err := q.TryPut([]byte("p")); !errors.Is(err, ErrFull) {
			t.Fatalf("capacity %d: parent's put into the child's full queue: %v", capacity, err)
		}
		time.Sleep(50 * time.Millisecond)
		select {
		case <-c.Done():
			t.Fatalf("capacity %d: the child's put beyond capacity did not block", capacity)
		default:
		}
		if m, err := q.TryGet(); err != nil || string(m) != "0" {
			t.Fatalf("capacity %d: first message %q %v", capacity, m, err)
		}
		c.Expect("put", 0)
		c.WaitOK()
		if q.Len() != capacity || !q.Full() {
			t.Fatalf("capacity %d: after the child's last put: Len %d Full %v", capacity, q.Len(), q.Full())
		}
		for i := 1; i < capacity; i++ {
			if m, err := q.TryGet(); err != nil || string(m) != strconv.Itoa(i) {
				t.Fatalf("capacity %d: message %d: %q %v", capacity, i, m, err)
			}
		}
		if m, err := q.TryGet(); err != nil || string(m) != "extra" {
			t.Fatalf("capacity %d: last message %q %v", capacity, m, err)
		}

		// Two producers race for the free places.
		var cs []*proctest.Child
		for range 2 {
			cs = append(cs, proctest.Start(t, "q-cap-race", path, strconv.Itoa(capacity+5)))
		}
		total := 0
		for _, out := range proctest.WaitAll(cs) {
			n, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		if total != capacity || q.Len() != capacity {
			t.Fatalf("capacity %d: racing producers put %d, Len %d", capacity, total, q.Len())
		}
	}
}
