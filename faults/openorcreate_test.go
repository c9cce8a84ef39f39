//go:build linux

package faults_test

import (
	"fmt"
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

const oocProcs = 8

func init() { addRole("ooc", roleOpenOrCreate) }

// roleOpenOrCreate opens or creates one object of every kind in the
// segment at args[0] and leaves a mark in each that only a shared object
// can add up; it says "ok" or the first error.
func roleOpenOrCreate(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	// Wait for the parent's go-ahead object, so that all start together.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		if _, err := seg.Lookup(shm.Spec{Name: "go", Kind: shm.KindBytes, KindVersion: 1}); err == nil {
			break
		}
	}
	fail := func(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }
	if _, err := lock.OpenOrCreate(seg, "lock", nil); err != nil {
		return fail("lock", err)
	}
	if _, err := rlock.OpenOrCreate(seg, "rlock", nil); err != nil {
		return fail("rlock", err)
	}
	if _, err := event.OpenOrCreate(seg, "event", nil); err != nil {
		return fail("event", err)
	}
	if _, err := condition.OpenOrCreate(seg, "cond", "", nil); err != nil {
		return fail("condition", err)
	}
	s, err := semaphore.OpenOrCreate(seg, "sem", 0, nil)
	if err != nil {
		return fail("semaphore", err)
	}
	if err := s.Release(1); err != nil {
		return fail("semaphore release", err)
	}
	bs, err := semaphore.OpenOrCreateBounded(seg, "bsem", oocProcs, nil)
	if err != nil {
		return fail("bounded semaphore", err)
	}
	if ok, err := bs.TryAcquire(); !ok || err != nil {
		return fail("bounded semaphore acquire", fmt.Errorf("%v %v", ok, err))
	}
	v, err := value.OpenOrCreate[int64](seg, "value", 0, nil)
	if err != nil {
		return fail("value", err)
	}
	v.Add(1)
	rv, err := value.OpenOrCreateRaw[int64](seg, "rawvalue", 0, nil)
	if err != nil {
		return fail("raw value", err)
	}
	rv.Add(1)
	a, err := array.OpenOrCreate[int64](seg, "array", 4, nil, nil)
	if err != nil {
		return fail("array", err)
	}
	a.Update(0, 1, func(x []int64) { x[0]++ })
	ra, err := array.OpenOrCreateRaw[int32](seg, "rawarray", 4, nil)
	if err != nil {
		return fail("raw array", err)
	}
	_ = ra.Len()
	q, err := ringbuf.OpenOrCreate(seg, "queue", 16, 8, nil)
	if err != nil {
		return fail("queue", err)
	}
	if err := q.TryPut([]byte("x")); err != nil {
		return fail("queue put", err)
	}
	jq, err := ringbuf.OpenOrCreateJoinable(seg, "joinable", 16, 8, nil)
	if err != nil {
		return fail("joinable queue", err)
	}
	if err := jq.TryPut([]byte("y")); err != nil {
		return fail("joinable put", err)
	}
	tq, err := ringbuf.OpenOrCreateTyped[int64](seg, "typed", 16, nil)
	if err != nil {
		return fail("typed queue", err)
	}
	if err := tq.TryPut(7); err != nil {
		return fail("typed put", err)
	}
	b, err := barrier.OpenOrCreate(seg, "barrier", oocProcs, nil)
	if err != nil {
		return fail("barrier", err)
	}
	// Every process waits at the one barrier: the round completes only if
	// all eight opened the same object.
	if _, err := b.WaitTimeout(30 * time.Second); err != nil {
		return fail("barrier wait", err)
	}
	fmt.Println("ok")
	return nil
}

// OpenOrCreate raced by 8 processes for every kind, 20 rounds: one object
// each, and every process attached to it.
func TestOpenOrCreateRace(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for r := range rounds {
		name := proctest.TempName(t)
		seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var cs []*proctest.Child
		for range oocProcs {
			cs = append(cs, proctest.Start(t, "ooc", seg.Path()))
		}
		if _, err := seg.Alloc(shm.Spec{Name: "go", Kind: shm.KindBytes, KindVersion: 1, Size: 8}, nil); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if out := c.Line(30 * time.Second); out != "ok" {
				t.Fatalf("round %d, process %d: %q\n%s", r, i, out, c.Wait(time.Second).Stderr)
			}
			c.WaitOK()
		}
		objs, err := seg.Objects()
		if err != nil || len(objs) != 15 {
			t.Fatalf("round %d: %d objects (%v), want 15", r, len(objs), err)
		}
		s, _ := semaphore.Open(seg, "sem", nil)
		v, _ := value.Open[int64](seg, "value", nil)
		rv, _ := value.OpenRaw[int64](seg, "rawvalue", nil)
		a, _ := array.Open[int64](seg, "array", nil)
		q, _ := ringbuf.Open(seg, "queue", nil)
		tq, _ := ringbuf.OpenTyped[int64](seg, "typed", nil)
		if got := s.Value(); got != oocProcs {
			t.Errorf("round %d: semaphore %d, want %d", r, got, oocProcs)
		}
		if v.Load() != oocProcs || rv.Load() != oocProcs || a.At(0) != oocProcs {
			t.Errorf("round %d: value %d, raw value %d, array %d; want %d each", r, v.Load(), rv.Load(), a.At(0), oocProcs)
		}
		if q.Len() != oocProcs || tq.Len() != oocProcs {
			t.Errorf("round %d: queue %d, typed %d messages; want %d", r, q.Len(), tq.Len(), oocProcs)
		}
		seg.Close()
	}
}
