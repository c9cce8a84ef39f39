//go:build linux

package faults_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
)

// Queue: producers put (slot, seq) messages, consumers take them and set
// the message's bit in a per-producer bitmap with an atomic OR. A bit found
// set already is a duplicate; a seq at or beyond what its producer ever
// attempted is a phantom. At the end every message a producer attempted
// and nobody received is lost: at most one per kill (the message in flight
// in the killed process). A producer that used up its bitmap retires and
// is replaced by one with a fresh slot.

const (
	qMaxSeq     = 1 << 16 // messages per producer slot
	qBitmapSize = qMaxSeq / 8
	sAttempted  = 1 // producer: seq+1 of the message being put
	sPut        = 2 // producer: messages whose Put returned nil
	sGot        = 1 // consumer: messages received
	gDup        = gKindBase + 10
	gPhantom    = gKindBase + 11
)

func queueBitmap(seg *shm.Segment) ([]byte, error) {
	return seg.Lookup(shm.Spec{Name: "bits", Kind: shm.KindBytes, KindVersion: 1})
}

func bitOr(bm []byte, slot int, seq uint32) bool {
	i := slot*qBitmapSize + int(seq/8)
	word := (*uint32)(unsafe.Pointer(&bm[i&^3]))
	bit := uint32(1) << (uint(i&3)*8 + uint(seq%8))
	for {
		old := atomic.LoadUint32(word)
		if old&bit != 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(word, old, old|bit) {
			return true
		}
	}
}

func bitSet(bm []byte, slot int, seq uint32) bool {
	i := slot*qBitmapSize + int(seq/8)
	return bm[i]&(1<<(seq%8)) != 0
}

func init() {
	addCrashKind(queueKind("queue"))
	addCrashKind(queueKind("joinable"))
}

// queueKind is the Queue, or with name "joinable" the JoinableQueue, whose
// consumers call TaskDone after recording each message: at the end no
// task may be unfinished and Join must return (a consumer killed between
// Get and TaskDone has its task counted done, as documented).
func queueKind(name string) *crashKind {
	return &crashKind{
		name:    name,
		workers: []string{"p", "p", "c", "c"},
		dump: func(h *harness) string {
			q, err := ringbuf.Open(h.seg, "obj", nil)
			if name == "joinable" {
				var j *ringbuf.JoinableQueue
				if j, err = ringbuf.OpenJoinable(h.seg, "obj", nil); j != nil {
					q = j.Queue
				}
			}
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("%+v; processes %+v", q.State(), h.seg.Processes())
		},
		first: []string{"p"},
		extra: func(n int) int { return (n*4 + 64) * qBitmapSize },
		setup: func(h *harness) {
			slots := numTrials(h.k)*4 + 64
			if _, err := h.seg.Alloc(shm.Spec{Name: "bits", Kind: shm.KindBytes, KindVersion: 1, Size: int64(slots * qBitmapSize)}, func([]byte) error { return nil }); err != nil {
				h.t.Fatal(err)
			}
			var err error
			if name == "joinable" {
				_, err = ringbuf.CreateJoinable(h.seg, "obj", 16, 16, nil)
			} else {
				_, err = ringbuf.Create(h.seg, "obj", 16, 16, nil)
			}
			if err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			var q *ringbuf.Queue
			var j *ringbuf.JoinableQueue
			var err error
			if name == "joinable" {
				j, err = ringbuf.OpenJoinable(w.seg, "obj", &ringbuf.Options{CheckInterval: crashCheck})
				if j != nil {
					q = j.Queue
				}
			} else {
				q, err = ringbuf.Open(w.seg, "obj", &ringbuf.Options{CheckInterval: crashCheck})
			}
			if err != nil {
				return err
			}
			bm, err := queueBitmap(w.seg)
			if err != nil {
				return err
			}
			if (w.slot+1)*qBitmapSize > len(bm) {
				return fmt.Errorf("slot %d beyond the bitmap", w.slot)
			}
			ready()
			if w.role == "p" {
				return queueProducer(w, q)
			}
			return queueConsumer(w, q, j, bm)
		},
		check: func(h *harness, final bool) {
			if d := ld(h.c.g(gDup)); d != 0 {
				h.t.Errorf("queue: %d messages delivered twice", d)
			}
			if p := ld(h.c.g(gPhantom)); p != 0 {
				h.t.Errorf("queue: %d messages never put were received", p)
			}
			if !final {
				return
			}
			bm, err := queueBitmap(h.seg)
			if err != nil {
				h.t.Fatal(err)
			}
			var lost, put, got uint64
			for _, w := range h.all {
				if w.role != "p" {
					got += ld(h.c.s(w.slot, sGot))
					continue
				}
				att := ld(h.c.s(w.slot, sAttempted))
				put += ld(h.c.s(w.slot, sPut))
				for s := uint32(0); s < uint32(att); s++ {
					if !bitSet(bm, w.slot, s) {
						lost++
					}
				}
			}
			if lost > uint64(h.kills) {
				h.t.Errorf("%s: %d messages lost for %d kills", name, lost, h.kills)
			}
			h.t.Logf("%s: %d puts returned, %d received, %d lost (at most one per kill), %d kills", name, put, got, lost, h.kills)
			if name != "joinable" {
				return
			}
			j, err := ringbuf.OpenJoinable(h.seg, "obj", nil)
			if err != nil {
				h.t.Fatal(err)
			}
			// A dead consumer's taken-but-not-done tasks count as done.
			un, ck := j.Unfinished(), h.killsOf["c"]
			if un != 0 {
				h.t.Errorf("joinable: %d tasks unfinished after the drain (%d consumers killed): %+v", un, ck, j.State())
			}
			if ok, err := j.JoinTimeout(5 * time.Second); !ok || err != nil {
				h.t.Errorf("joinable: Join %v, %v after the drain", ok, err)
			}
			h.t.Logf("joinable: Join returned after the drain, %d consumers killed", ck)
		},
	}
}

func queueProducer(w *wctx, q *ringbuf.Queue) error {
	var msg [8]byte
	for seq := uint32(0); !w.stopped(); seq++ {
		if seq == qMaxSeq {
			fmt.Println("retired")
			return nil
		}
		binary.LittleEndian.PutUint32(msg[:4], uint32(w.slot))
		binary.LittleEndian.PutUint32(msg[4:], seq)
		st(w.s(sAttempted), uint64(seq)+1)
		for {
			var err error
			w.blocking(true)
			switch w.rng.IntN(3) {
			case 0:
				err = q.TryPut(msg[:])
			case 1:
				err = q.PutTimeout(msg[:], 20*time.Millisecond)
			default:
				if w.rng.IntN(2) == 0 {
					r, rerr := q.ReserveTimeout(len(msg), 20*time.Millisecond)
					if err = rerr; err == nil {
						copy(r.Bytes(), msg[:])
						err = r.Commit()
					}
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					err = q.Put(ctx, msg[:])
					cancel()
				}
			}
			w.blocking(false)
			if err == nil {
				break
			}
			if !errors.Is(err, ringbuf.ErrFull) && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("put: %w", err)
			}
			w.park()
			if w.stopped() {
				// Not put: the attempt does not count.
				st(w.s(sAttempted), uint64(seq))
				return nil
			}
		}
		st(w.s(sPut), uint64(seq)+1)
		w.tick()
	}
	return nil
}

func queueConsumer(w *wctx, q *ringbuf.Queue, j *ringbuf.JoinableQueue, bm []byte) error {
	buf := make([]byte, 64)
	for {
		var n int
		var err error
		w.blocking(true)
		switch w.rng.IntN(3) {
		case 0:
			n, err = q.TryGetInto(buf)
		case 1:
			n, err = q.GetIntoTimeout(buf, 20*time.Millisecond)
		default:
			var b ringbuf.Borrowed
			if b, err = q.BorrowTimeout(20 * time.Millisecond); err == nil {
				n = copy(buf, b.Bytes())
				err = b.Release()
			}
		}
		w.blocking(false)
		if errors.Is(err, ringbuf.ErrEmpty) {
			if w.stopped() && allProducersDone(w) {
				return nil
			}
			w.park()
			continue
		}
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if n != 8 {
			w.violation("queue: message of %d bytes", n)
			if j != nil {
				j.TaskDone()
			}
			continue
		}
		slot := int(binary.LittleEndian.Uint32(buf[:4]))
		seq := binary.LittleEndian.Uint32(buf[4:8])
		switch {
		case slot >= int(ld(w.c.g(gSlots))) || (slot+1)*qBitmapSize > len(bm) || seq >= qMaxSeq:
			inc(w.c.g(gPhantom))
			w.violation("queue: message (%d, %d) from nowhere", slot, seq)
		case uint64(seq) >= ld(w.c.s(slot, sAttempted)):
			inc(w.c.g(gPhantom))
			w.violation("queue: message (%d, %d) never attempted", slot, seq)
		case !bitOr(bm, slot, seq):
			inc(w.c.g(gDup))
			w.violation("queue: message (%d, %d) received twice", slot, seq)
		}
		inc(w.s(sGot))
		if j != nil {
			if err := j.TaskDone(); err != nil {
				return fmt.Errorf("TaskDone: %w", err)
			}
		}
		w.tick()
	}
}

// allProducersDone: at the end the parent sets the stop flag, waits for the
// producers to exit, then sets gFirstDone; consumers drain the queue until
// it is empty after that.
func allProducersDone(w *wctx) bool { return ld(w.c.g(gFirstDone)) != 0 }
