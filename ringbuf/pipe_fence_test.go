//go:build linux

package ringbuf

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

func init() { roles["pipe-sleepy-echo"] = pipeRoleSleepyEcho }

// pipeRoleSleepyEcho: PATH — pipeRoleEcho with liveness checks an hour
// apart, so that nothing but a wake ends its sleeps.
func pipeRoleSleepyEcho(args []string) error { return pipeEcho(args, time.Hour) }

// Each side of a ring says in its unfenced word whether it publishes
// without a fence: where the build allows it and membarrier registration
// worked (amd64 without the race detector, Linux 4.16 or later).
func TestPipeUnfencedWords(t *testing.T) {
	a, b, _ := pipeTestPair(t, nil)
	want := spscFlag(spscUnfenced())
	for _, c := range []*Conn{a, b} {
		if got := atomic.LoadUint32(&c.tx.sh.wplain); got != want {
			t.Errorf("end %d: writer's unfenced word %d, want %d", c.End(), got, want)
		}
		if got := atomic.LoadUint32(&c.rx.sh.rplain); got != want {
			t.Errorf("end %d: reader's unfenced word %d, want %d", c.End(), got, want)
		}
		if c.tx.plain != (want == 1) || c.rx.plain != (want == 1) {
			t.Errorf("end %d: handles publish unfenced %v/%v, word %d", c.End(), c.tx.plain, c.rx.plain, want)
		}
	}
	if spscPlainStore && !spscUnfenced() {
		t.Log("membarrier unavailable: this process publishes with a fence")
	}
}

// pipeFenceRefused makes every membarrier of the test fail.
func pipeFenceRefused(t *testing.T) {
	old := spscFence
	spscFence = func() bool { return false }
	t.Cleanup(func() { spscFence = old })
}

// A sleeper whose peer publishes without a fence and whose membarrier is
// refused cannot trust its last look at the ring: it naps (sleeps of
// spscUnfencedNap, a re-check after each) instead of sleeping until woken.
// A sleeper whose peer fences sleeps once. Both get their message.
func TestPipeFenceRefusedNaps(t *testing.T) {
	const wait = 40 * time.Millisecond
	for _, refused := range []bool{false, true} {
		t.Run("refused="+strconv.FormatBool(refused), func(t *testing.T) {
			if refused {
				pipeFenceRefused(t)
			}
			opts := &PipeOptions{OneWay: true, Capacity: PipeMinCapacity, CheckInterval: time.Hour}
			r, w, _ := pipeTestPair(t, opts)
			// As a peer that publishes unfenced would have said.
			atomic.StoreUint32(&r.rx.sh.wplain, 1)
			atomic.StoreUint32(&w.tx.sh.rplain, 1)

			// Recv waits for a message sent late.
			go func() {
				time.Sleep(wait)
				w.Send(context.Background(), []byte("late"))
			}()
			buf := make([]byte, 16)
			if n, err := r.Recv(context.Background(), buf); err != nil || string(buf[:n]) != "late" {
				t.Fatalf("Recv: %q, %v", buf[:n], err)
			}
			// Send waits for room made late.
			for w.TrySend(make([]byte, 64)) == nil {
			}
			go func() {
				time.Sleep(wait)
				rb := make([]byte, 64)
				for {
					if _, err := r.TryRecv(rb); err != nil {
						return
					}
				}
			}()
			if err := w.Send(context.Background(), make([]byte, 64)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			rs, ws := r.Stats().Waits, w.Stats().Waits
			if refused && (rs < 5 || ws < 5) {
				t.Errorf("refused membarrier: Recv slept %d times and Send %d in %v, want naps", rs, ws, wait)
			}
			if !refused && (rs > 2 || ws > 2) {
				t.Errorf("granted membarrier: Recv slept %d times and Send %d, want one sleep each", rs, ws)
			}
		})
	}
}

// ArmRecv on a pipe whose sender publishes unfenced, with membarrier
// refused, returns a value the word never holds: Select polls.
func TestPipeArmRecvFenceRefused(t *testing.T) {
	pipeFenceRefused(t)
	r, _, _ := pipeTestPair(t, &PipeOptions{OneWay: true})
	atomic.StoreUint32(&r.rx.sh.wplain, 0) // as a peer that fences would say
	if w, v := r.ArmRecv(); *w != 1 || v != 1 {
		t.Errorf("fenced peer: ArmRecv word %d, value %d; want 1, 1", *w, v)
	}
	r.DisarmRecv()
	atomic.StoreUint32(&r.rx.sh.wplain, 1)
	if w, v := r.ArmRecv(); *w == v {
		t.Errorf("unfenced peer, membarrier refused: ArmRecv value %d equals the word", v)
	}
	r.DisarmRecv()
}

// Request/response with a child where every wait ends in a sleep: each
// side waits for the other's message after its spin has run out (the child
// echoes at once; the parent answers after a pause), so each message
// crosses the unfenced publication and the sleeper's membarrier. A lost
// wakeup would hang a Recv: the liveness check that would end it is an
// hour away, and the context ends the test instead. (On amd64, with the
// sleeper's membarrier left out, two runs in three hang.)
func TestPipeSleepersAcrossProcesses(t *testing.T) {
	opts := &PipeOptions{Capacity: 4096, MaxMsgSize: 1024, CheckInterval: time.Hour}
	mem, path := pipeTestFile(t, PipeSizeOf(opts))
	c, err := InitPipe(mem, pipeRegOpts(t, opts, path))
	if err != nil {
		t.Fatal(err)
	}
	child := proctest.Start(t, "pipe-sleepy-echo", path)
	rounds := 2000
	if testing.Short() {
		rounds = 600
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	max := c.MaxMsgSize()
	out, in := make([]byte, max), make([]byte, max)
	for i := uint64(0); i < uint64(rounds)*2; i += 2 {
		if i%4 == 0 {
			time.Sleep(50 * time.Microsecond) // past the child's spin: it sleeps
		}
		if err := c.Send(ctx, pipeMakeMsg(out, i, max)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		n, err := c.Recv(ctx, in)
		if err != nil {
			t.Fatalf("Recv %d: %v (a lost wakeup?)", i+1, err)
		}
		if j, err := pipeCheckMsg(in[:n], max); err != nil || j != i+1 {
			t.Fatalf("response %d (%v), want %d", j, err, i+1)
		}
	}
	if c.Stats().Waits == 0 {
		t.Error("the parent never slept: the test did not cross the sleep path")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	child.WaitOK()
}
