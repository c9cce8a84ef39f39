//go:build linux

package faults_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// objects is one handle of every kind, placed in or opened from one
// segment.
type objects struct {
	l    *lock.Lock
	r    *rlock.RLock
	s    *semaphore.Semaphore
	bs   *semaphore.BoundedSemaphore
	e    *event.Event
	c    *condition.Condition
	b    *barrier.Barrier
	v    *value.Value[quad]
	rv   *value.RawValue[int64]
	a    *array.Array[int64]
	ra   *array.RawArray[int64]
	q    *ringbuf.Queue
	j    *ringbuf.JoinableQueue
	pipe *ringbuf.Conn
}

func createObjects(t *testing.T, seg *shm.Segment) *objects {
	t.Helper()
	var o objects
	var err error
	must := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	o.l, err = lock.Create(seg, "l", nil)
	must(err)
	o.r, err = rlock.Create(seg, "r", nil)
	must(err)
	o.s, err = semaphore.Create(seg, "s", 0, nil)
	must(err)
	o.bs, err = semaphore.CreateBounded(seg, "bs", 1, nil)
	must(err)
	o.e, err = event.Create(seg, "e", nil)
	must(err)
	o.c, err = condition.Create(seg, "c", "", nil)
	must(err)
	o.b, err = barrier.Create(seg, "b", 1, nil)
	must(err)
	o.v, err = value.Create(seg, "v", quad{}, nil)
	must(err)
	o.rv, err = value.CreateRaw[int64](seg, "rv", 0, nil)
	must(err)
	o.a, err = array.Create[int64](seg, "a", 4, nil, nil)
	must(err)
	o.ra, err = array.CreateRaw[int64](seg, "ra", 4, nil)
	must(err)
	o.q, err = ringbuf.Create(seg, "q", 4, 16, nil)
	must(err)
	o.j, err = ringbuf.CreateJoinable(seg, "j", 4, 16, nil)
	must(err)
	o.pipe, err = ringbuf.CreatePipe(seg, "p", &ringbuf.PipeOptions{Capacity: 256})
	must(err)
	return &o
}

// use runs an operation of every kind and checks what it can.
func (o *objects) use(t *testing.T, round int64) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("round %d: %s: %v", round, what, err)
		}
	}
	if ok, err := o.l.AcquireTimeout(time.Second); !ok || err != nil {
		t.Errorf("lock: %v %v", ok, err)
	} else {
		check("lock release", o.l.Release())
	}
	check("rlock", o.r.Acquire(context.Background()))
	check("rlock release", o.r.Release())
	check("semaphore release", o.s.Release(1))
	if ok, err := o.s.AcquireTimeout(time.Second); !ok || err != nil {
		t.Errorf("semaphore acquire: %v %v", ok, err)
	}
	if ok, _ := o.bs.TryAcquire(); ok {
		check("bounded semaphore", o.bs.Release(1))
	}
	o.e.Set()
	if !o.e.WaitTimeout(time.Second) {
		t.Error("event not set")
	}
	o.e.Clear()
	check("condition acquire", o.c.Acquire(context.Background()))
	check("condition notify", o.c.Notify(1))
	check("condition release", o.c.Release())
	if _, err := o.b.WaitTimeout(time.Second); err != nil {
		t.Errorf("barrier: %v", err)
	}
	o.v.Store(quad{A: uint64(round)})
	if _, err := o.v.Update(func(x *quad) { x.B = uint64(round) }); err != nil {
		t.Errorf("value update: %v", err)
	}
	o.rv.Add(1)
	o.a.Set(0, round)
	o.ra.Set(1, round)
	check("queue put", o.q.PutTimeout([]byte("m"), time.Second))
	if _, err := o.q.GetTimeout(time.Second); err != nil {
		t.Errorf("queue get: %v", err)
	}
	check("joinable put", o.j.PutTimeout([]byte("t"), time.Second))
	if _, err := o.j.GetTimeout(time.Second); err != nil {
		t.Errorf("joinable get: %v", err)
	}
	check("task done", o.j.TaskDone())
	check("pipe send", o.pipe.SendTimeout([]byte("x"), time.Second))
}

// TestUseAfterClose: every kind of object keeps working after its
// segment's Close (the mapping stays while handles are reachable: no
// SIGSEGV), on the shared memory itself — a second handle on the segment
// sees the writes. Once the handles are dropped, the mapping goes.
func TestUseAfterClose(t *testing.T) {
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shm.DefaultDir, name)
	o := createObjects(t, seg)
	other, err := shm.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ov, err := value.Open[quad](other, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.use(t, 1)
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	// The segment's own operations report ErrClosed.
	if _, err := seg.Lookup(shm.Spec{Name: "l", Kind: shm.KindLock, KindVersion: lock.Version}); !errors.Is(err, shm.ErrClosed) {
		t.Errorf("Lookup after Close: %v, want ErrClosed", err)
	}
	if _, err := lock.Create(seg, "l2", nil); !errors.Is(err, shm.ErrClosed) {
		t.Errorf("lock.Create after Close: %v, want ErrClosed", err)
	}
	o.use(t, 2)
	if got := ov.Load(); got != (quad{A: 2, B: 2}) {
		t.Errorf("a write through a handle of the closed segment is not in the shared memory: %+v", got)
	}
	// Even with the file removed and no other handle, the objects work.
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shm.Remove(name, nil); err != nil {
		t.Fatal(err)
	}
	runtime.GC() // ov is dropped: its cleanup may run, o's must not unmap
	o.use(t, 3)
	if got := o.v.Load(); got != (quad{A: 3, B: 3}) {
		t.Errorf("value after Close: %+v", got)
	}
	if _, maps := fdsAndMaps(t, path); len(maps) == 0 {
		t.Fatal("the mapping is gone while handles are in use")
	}
	runtime.KeepAlive(o)
	o = nil
	if _, maps := mapsAfterGC(t, path); len(maps) != 0 {
		t.Errorf("mappings left after every handle was dropped: %v", maps)
	}
}
