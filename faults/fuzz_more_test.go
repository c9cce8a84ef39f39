//go:build linux

package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/semaphore"
)

// More Attach fuzz targets. Semaphore, Event and Barrier have FuzzAttach in
// their packages, with non-blocking first operations; these go through the
// blocking forms with short timeouts and contexts, where a garbage state
// word could make a waiter spin or sleep without end. The Queue's own fuzz
// target corrupts a queue that Init made; this one feeds arbitrary bytes to
// Attach, AttachJoinable and AttachTyped.

func FuzzSemaphoreAttach(f *testing.F) {
	f.Add(byte(0), seedBytes(semaphore.Size, func(m []byte) { semaphore.Init(m, 1, nil) }))
	f.Add(byte(1), seedBytes(semaphore.Size, func(m []byte) { semaphore.InitBounded(m, 2, nil) }))
	f.Add(byte(0), seedBytes(semaphore.Size, func(m []byte) { semaphore.Init(m, 0, nil) }))
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		defer watchdog(fuzzWatch, "semaphore")()
		mem := alignedCopy(b, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
		defer cancel()
		if which%2 == 0 {
			s, err := semaphore.Attach(mem, nil)
			if err != nil {
				return
			}
			if ok, _ := s.AcquireTimeout(3 * time.Millisecond); ok {
				s.Release(1)
			}
			if s.Acquire(ctx) == nil {
				s.Release(1)
			}
			if v := s.Value(); v < 0 || v > semaphore.MaxValue {
				t.Fatalf("value %d out of range", v)
			}
			return
		}
		s, err := semaphore.AttachBounded(mem, nil)
		if err != nil {
			return
		}
		if ok, _ := s.AcquireTimeout(3 * time.Millisecond); ok {
			if err := s.Release(1); err != nil && !errors.Is(err, semaphore.ErrReleasedTooMany) {
				t.Fatalf("release after acquire: %v", err)
			}
		}
		if s.Acquire(ctx) == nil {
			s.Release(1)
		}
	})
}

func FuzzEventAttach(f *testing.F) {
	f.Add(seedBytes(event.Size, func(m []byte) { event.Init(m, nil) }))
	f.Add(seedBytes(event.Size, func(m []byte) { e, _ := event.Init(m, nil); e.Set() }))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		defer watchdog(fuzzWatch, "event")()
		e, err := event.Attach(alignedCopy(b, 0), nil)
		if err != nil {
			return
		}
		e.WaitTimeout(3 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
		defer cancel()
		e.Wait(ctx)
		e.Set()
		if !e.WaitTimeout(3 * time.Millisecond) {
			t.Fatal("Wait on a set Event timed out")
		}
		e.Clear()
		_ = e.State()
	})
}

func FuzzBarrierAttach(f *testing.F) {
	n := barrier.SizeOf(2, 4)
	f.Add(seedBytes(n, func(m []byte) { b, _ := barrier.Init(m, 2, &barrier.Options{Handles: 4}); b.Close() }))
	f.Add(seedBytes(n, func(m []byte) { b, _ := barrier.Init(m, 1, &barrier.Options{Handles: 4}); b.Close() }))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		defer watchdog(fuzzWatch, "barrier")()
		br, err := barrier.Attach(alignedCopy(b, 0), &barrier.Options{CheckInterval: time.Millisecond})
		if err != nil {
			return
		}
		defer br.Close()
		_ = br.State()
		br.WaitTimeout(3 * time.Millisecond)
		br.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
		defer cancel()
		br.Wait(ctx)
		br.Abort()
		br.Wait(ctx)
	})
}

func FuzzQueueAttach(f *testing.F) {
	f.Add(byte(0), seedBytes(ringbuf.SizeOf(4, 16), func(m []byte) {
		q, _ := ringbuf.Init(m, 4, 16, nil)
		q.TryPut([]byte("hello"))
	}))
	f.Add(byte(1), seedBytes(ringbuf.SizeOfJoinable(4, 16), func(m []byte) {
		q, _ := ringbuf.InitJoinable(m, 4, 16, nil)
		q.TryPut([]byte("task"))
	}))
	f.Add(byte(2), seedBytes(ringbuf.SizeOfTyped[int64](4), func(m []byte) {
		q, _ := ringbuf.InitTyped[int64](m, 4, nil)
		q.TryPut(7)
	}))
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		defer watchdog(fuzzWatch, "queue")()
		mem := alignedCopy(b, 0)
		o := &ringbuf.Options{CheckInterval: time.Millisecond}
		d := 3 * time.Millisecond
		switch which % 3 {
		case 0:
			q, err := ringbuf.Attach(mem, o)
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			if n, err := q.GetIntoTimeout(buf, d); err == nil && n > q.MaxMsgSize() {
				t.Fatalf("message of %d bytes, max %d", n, q.MaxMsgSize())
			}
			q.PutTimeout([]byte("x"), d)
			if m, err := q.GetTimeout(d); err == nil && len(m) > q.MaxMsgSize() {
				t.Fatalf("message of %d bytes, max %d", len(m), q.MaxMsgSize())
			}
			if bw, err := q.BorrowTimeout(d); err == nil {
				_ = bw.Bytes()
				bw.Release()
			}
			_ = q.State()
			q.Shutdown(true)
			q.Close()
		case 1:
			j, err := ringbuf.AttachJoinable(mem, o)
			if err != nil {
				return
			}
			if _, err := j.GetTimeout(d); err == nil {
				j.TaskDone()
			}
			j.JoinTimeout(d)
			_ = j.Unfinished()
			_ = j.State()
		case 2:
			q, err := ringbuf.AttachTyped[int64](mem, o)
			if err != nil {
				return
			}
			q.PutTimeout(1, d)
			q.GetTimeout(d)
			_ = q.State()
		}
	})
}
