//go:build linux

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
)

// Event: waiters sleep on a clear Event; the parent kills one of them at a
// random moment (asleep in the kernel, or spinning, or between waits),
// replaces it, bumps the round word and Sets: every live waiter must
// report the round within the hang timeout. Count: each Set releases every
// live waiter exactly once (each one's seen round equals the parent's).

const sSeen = 1

func init() {
	addCrashKind(&crashKind{
		name:    "event",
		workers: []string{"w", "w", "w", "w"},
		setup: func(h *harness) {
			if _, err := event.Create(h.seg, "obj", nil); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			e, err := event.Open(w.seg, "obj", nil)
			if err != nil {
				return err
			}
			last := ld(w.c.g(gEpoch))
			st(w.s(sSeen), last)
			ready()
			for !w.stopped() {
				var set bool
				w.blocking(true)
				if w.rng.IntN(2) == 0 {
					set = e.WaitTimeout(50 * time.Millisecond)
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					set = e.Wait(ctx) == nil
					cancel()
				}
				w.blocking(false)
				if !set {
					continue
				}
				r := ld(w.c.g(gEpoch))
				if r == last {
					// Still set from the round already seen: wait for Clear.
					time.Sleep(200 * time.Microsecond)
					continue
				}
				if r != last+1 && last != 0 {
					// A round skipped is fine only if the parent moved on
					// twice while this worker slept; it never does.
					w.violation("event: round %d after %d", r, last)
				}
				last = r
				st(w.s(sSeen), r)
				w.tick()
			}
			return nil
		},
		trial: func(h *harness) {
			e, err := event.Open(h.seg, "obj", nil)
			if err != nil {
				h.t.Fatal(err)
			}
			e.Clear()
			h.randomMoment()
			v := h.randomWorker()
			h.kill(v)
			h.start(v.role)
			r := inc(h.c.g(gEpoch))
			e.Set()
			deadline := time.Now().Add(hangTimeout)
			for _, w := range h.ws {
				for ld(h.c.s(w.slot, sSeen)) != r {
					if time.Now().After(deadline) {
						h.hang(w, fmt.Sprintf("not released by Set of round %d", r))
					}
					time.Sleep(200 * time.Microsecond)
				}
			}
		},
	})
	addCrashKind(barrierKind())
	addCrashKind(pipeKind())
}

// Barrier: every worker is a party. The parent kills one at a random
// moment; every survivor's next Wait must return ErrBrokenBarrier within
// the hang timeout (the death is noticed by a sleeping waiter). The parent
// starts a replacement, Resets the barrier through an Observe handle and
// bumps the epoch; the parties resume. Conservation: rounds released x
// parties - successful Waits counted is in [0, kills].

const (
	barrierParties = 3
	sWaits         = 1
	sBroken        = 2
)

func barrierKind() *crashKind {
	return &crashKind{
		name:    "barrier",
		workers: []string{"w", "w", "w"},
		setup: func(h *harness) {
			b, err := barrier.Create(h.seg, "obj", barrierParties, &barrier.Options{Observe: true})
			if err != nil {
				h.t.Fatal(err)
			}
			b.Close()
		},
		worker: func(w *wctx) error {
			b, err := barrier.Open(w.seg, "obj", &barrier.Options{CheckInterval: crashCheck})
			if err != nil {
				return err
			}
			defer b.Close()
			ep := ld(w.c.g(gEpoch))
			ready()
			for !w.stopped() {
				ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
				w.blocking(true)
				_, err := b.Wait(ctx)
				w.blocking(false)
				cancel()
				switch {
				case err == nil:
					inc(w.s(sWaits))
					w.tick()
				case errors.Is(err, barrier.ErrBrokenBarrier):
					inc(w.s(sBroken))
					for ld(w.c.g(gEpoch)) == ep && !w.stopped() {
						time.Sleep(200 * time.Microsecond)
					}
					ep = ld(w.c.g(gEpoch))
				case errors.Is(err, context.DeadlineExceeded):
					return fmt.Errorf("barrier: Wait hung for %v", hangTimeout)
				default:
					return err
				}
			}
			return nil
		},
		trial: func(h *harness) {
			b, err := barrier.Open(h.seg, "obj", &barrier.Options{Observe: true})
			if err != nil {
				h.t.Fatal(err)
			}
			defer b.Close()
			before := map[int]uint64{}
			for _, w := range h.ws {
				before[w.slot] = ld(h.c.s(w.slot, sBroken))
			}
			h.randomMoment()
			v := h.randomWorker()
			h.kill(v)
			deadline := time.Now().Add(hangTimeout)
			for _, w := range h.ws {
				for ld(h.c.s(w.slot, sBroken)) == before[w.slot] {
					if time.Now().After(deadline) {
						h.hang(w, "did not get ErrBrokenBarrier after a party was killed")
					}
					time.Sleep(200 * time.Microsecond)
				}
			}
			checkBarrier(h, b)
			h.start(v.role)
			b.Reset()
			inc(h.c.g(gEpoch))
			h.waitProgress(h.ws)
		},
		beforeFinish: func(h *harness) {
			// Parties that see the stop flag leave; the ones waiting for
			// them are released by an Abort.
			b, err := barrier.Open(h.seg, "obj", &barrier.Options{Observe: true})
			if err != nil {
				h.t.Fatal(err)
			}
			b.Abort()
			b.Close()
		},
		check: func(h *harness, final bool) {
			b, err := barrier.Open(h.seg, "obj", &barrier.Options{Observe: true})
			if err != nil {
				h.t.Fatal(err)
			}
			defer b.Close()
			checkBarrier(h, b)
			if st := b.State(); final && len(registered(st)) != 0 {
				// A worker that was killed leaves its slot until a waiter
				// notices; the ones that exited closed theirs.
				h.t.Errorf("barrier: processes still registered after every party closed: %+v", st.Registered)
			}
		},
	}
}

func registered(s barrier.State) []barrier.Registered {
	var r []barrier.Registered
	for _, x := range s.Registered {
		if x.Pid != 0 {
			r = append(r, x)
		}
	}
	return r
}

func checkBarrier(h *harness, b *barrier.Barrier) {
	s := b.State()
	want := s.Rounds * barrierParties
	got := h.sumSlots(sWaits)
	if got > want || want-got > uint64(h.kills)*barrierParties {
		h.t.Errorf("barrier: %d rounds x %d parties, %d Waits counted, %d kills", s.Rounds, barrierParties, got, h.kills)
	}
}

// Pipe: each trial a fresh pipe in the same memory. A sender (end 1) sends
// numbered messages; a receiver (end 0) checks they arrive in order, each
// once. The parent kills the sender (the receiver must drain and see
// io.EOF) or the receiver (the sender must get ErrPeerGone). Conservation:
// the receiver got every message whose Send returned, and none that was
// never attempted.

const (
	pipeCap    = 4096
	sSent      = 1 // sender: Sends returned nil
	sAttempt   = 2 // sender: Sends begun
	sRecvd     = 1 // receiver: messages received in order
	gPipeTrial = gKindBase + 20
)

func pipeKind() *crashKind {
	po := &ringbuf.PipeOptions{Capacity: pipeCap, CheckInterval: crashCheck}
	return &crashKind{
		name:  "pipe",
		short: 6,
		setup: func(h *harness) {
			if _, err := h.seg.Alloc(shm.Spec{Name: "pipe", Kind: shm.KindBytes, KindVersion: 1, Size: int64(ringbuf.PipeSizeOf(po))}, func([]byte) error { return nil }); err != nil {
				h.t.Fatal(err)
			}
		},
		worker: func(w *wctx) error {
			mem, err := w.seg.Lookup(shm.Spec{Name: "pipe", Kind: shm.KindBytes, KindVersion: 1})
			if err != nil {
				return err
			}
			end := 1
			if w.role == "r" {
				end = 0
			}
			wpo := *po
			wpo.Registry = w.seg.Registry()
			c, err := ringbuf.AttachPipe(mem, end, &wpo)
			if err != nil {
				return err
			}
			defer c.Close()
			ready()
			buf := make([]byte, 64)
			if w.role == "s" {
				for i := uint64(0); ; i++ {
					n := 8 + int(i%32)
					for j := range n {
						buf[j] = byte(i >> (8 * (j % 8)))
					}
					st(w.s(sAttempt), i+1)
					err := c.Send(context.Background(), buf[:n])
					if errors.Is(err, ringbuf.ErrPeerGone) {
						fmt.Println("peergone")
						return nil
					}
					if err != nil {
						return fmt.Errorf("send: %w", err)
					}
					st(w.s(sSent), i+1)
					w.tick()
				}
			}
			for i := uint64(0); ; i++ {
				n, err := c.Recv(context.Background(), buf)
				if err == io.EOF {
					fmt.Println("eof")
					return nil
				}
				if err != nil {
					return fmt.Errorf("recv: %w", err)
				}
				ok := n == 8+int(i%32)
				for j := 0; ok && j < n; j++ {
					ok = buf[j] == byte(i>>(8*(j%8)))
				}
				if !ok {
					w.violation("pipe: message %d wrong or out of order: % x", i, buf[:n])
					return nil
				}
				st(w.s(sRecvd), i+1)
				w.tick()
			}
		},
		trial: func(h *harness) {
			mem, err := h.seg.Lookup(shm.Spec{Name: "pipe", Kind: shm.KindBytes, KindVersion: 1})
			if err != nil {
				h.t.Fatal(err)
			}
			hpo := *po
			hpo.Registry = h.seg.Registry()
			c, err := ringbuf.InitPipe(mem, &hpo)
			if err != nil {
				h.t.Fatal(err)
			}
			if err := c.Detach(); err != nil {
				h.t.Fatal(err)
			}
			r := h.start("r")
			s := h.start("s")
			h.randomMoment()
			victim, survivor, want := s, r, "eof"
			if h.trials%2 == 1 {
				victim, survivor, want = r, s, "peergone"
			}
			h.kill(victim)
			res := survivor.ch.Wait(hangTimeout)
			h.drop(survivor)
			if res.TimedOut {
				h.t.Fatalf("pipe: HANG: %s did not see its peer die within %v", survivor.role, hangTimeout)
			}
			if res.Code != 0 || !strings.Contains(res.Stdout, want) {
				h.t.Fatalf("pipe: %s ended with code %d, stdout %q (want %q)\n%s", survivor.role, res.Code, res.Stdout, want, res.Stderr)
			}
			got := ld(h.c.s(r.slot, sRecvd))
			sent, att := ld(h.c.s(s.slot, sSent)), ld(h.c.s(s.slot, sAttempt))
			if victim == s && (got < sent || got > att) {
				h.t.Errorf("pipe: sender killed after %d Sends returned (%d begun); receiver got %d", sent, att, got)
			}
			if got > att {
				h.t.Errorf("pipe: receiver got %d messages, only %d sent", got, att)
			}
		},
	}
}
