//go:build linux

package faults_test

// The window hunter: a kill at a random moment rarely lands between two
// related stores a few nanoseconds apart, so the crash suite can pass
// thousands of trials while such a window stays open. The hunter aims
// instead. A victim process loops over operations that update more than
// one shared word; the hunter stops it with SIGSTOP at random moments,
// reads the shared words while every thread of it is stopped, and sends
// SIGKILL only when they show the victim inside a declared window (an
// invariant between the words broken mid-update). Otherwise it sends
// SIGCONT and tries again. After each kill the survivor (this process)
// recovers the documented way and then uses the object normally for a
// fixed number of operations, checking every result.
//
// Each kind declares its windows; the hunter reports how often each was
// hit, and fails when one was never reached: a window it cannot reach is
// visible, never a silent pass. The short form (the default) wants one hit
// per window (usually reached within 0.1-3.5 s per kind; 20 s at most);
// -faults.windows=N wants N.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

var (
	windowHits   = flag.Int("faults.windows", 0, "window hunter: hits wanted per declared window (0: short form, 1 each)")
	windowBudget = flag.Duration("faults.windows.budget", 0, "window hunter: time limit per kind (0: 20 s short form, 30 min long form)")
)

// wCheck is the CheckInterval of the hunted objects: dead processes are
// found within about this long.
const wCheck = 10 * time.Millisecond

// Words the victim shares with the hunter, in the KindBytes object "hunt".
const (
	hwSelf  = 0 // the victim's registry identity (proc.ID.Pack)
	hwIters = 1 // loop iterations completed
	hwA     = 2 // kind-specific counters from here
	hwB     = 3
	hwC     = 4
	hwWords = 16
)

var huntSpec = shm.Spec{Name: "hunt", Kind: shm.KindBytes, KindVersion: 1, Size: hwWords * 8}

// windowKind is one object kind under the hunter.
type windowKind struct {
	name    string
	windows []string
	// setup creates the object in the segment (parent side).
	setup func(h *hunt)
	// victim loops over the kind's operations in the child until killed.
	victim func(seg *shm.Segment, words []uint64) error
	// inspect reads the shared words while the victim is stopped and
	// returns the window it is in, -1 for none.
	inspect func(h *hunt) int
	// after recovers from a kill in window w and uses the object normally.
	after func(h *hunt, w int) error
	// segSize is the size of the hunt's segment (0: 1 MiB).
	segSize int64
}

var windowKinds []*windowKind

func addWindowKind(k *windowKind) { windowKinds = append(windowKinds, k) }

func init() { addRole("window-victim", windowVictim) }

// hunt is the hunter's state for one kind.
type hunt struct {
	t      *testing.T
	k      *windowKind
	name   string
	seg    *shm.Segment
	words  []uint64 // shared with the victim
	victim *proctest.Child
	obj    any // the kind's parent-side handles
}

func (h *hunt) w(i int) uint64 { return atomic.LoadUint64(&h.words[i]) }

// lookup returns the bytes of object spec in the segment.
func (h *hunt) lookup(spec shm.Spec) []byte {
	mem, err := h.seg.Lookup(spec)
	if err != nil {
		h.t.Fatal(err)
	}
	return mem
}

func windowVictim(args []string) error {
	var k *windowKind
	for _, c := range windowKinds {
		if c.name == args[0] {
			k = c
		}
	}
	if k == nil {
		return fmt.Errorf("no window kind %q", args[0])
	}
	seg, err := shm.Open(args[1], nil)
	if err != nil {
		return err
	}
	mem, err := seg.Lookup(huntSpec)
	if err != nil {
		return err
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), hwWords)
	for i := range words {
		atomic.StoreUint64(&words[i], 0)
	}
	atomic.StoreUint64(&words[hwSelf], seg.Registry().SelfPacked())
	return k.victim(seg, words)
}

// stop stops the victim and waits until every thread of it has stopped.
// A victim that exited fails the test.
func (h *hunt) stop() {
	h.checkRunning()
	pid := h.victim.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		if err != syscall.ESRCH {
			h.t.Fatal(err)
		}
		<-h.victim.Done() // reaped: Done is about to say so
		h.checkRunning()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.checkRunning()
		ok, err := proctest.ThreadsStopped(pid)
		if err != nil {
			// Gone from /proc: reaped, and Done is about to say so.
			select {
			case <-h.victim.Done():
			case <-time.After(5 * time.Second):
				h.t.Fatalf("victim: %v", err)
			}
			h.checkRunning()
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("victim does not stop")
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// checkRunning fails the test if the victim has exited.
func (h *hunt) checkRunning() {
	select {
	case <-h.victim.Done():
	default:
		return
	}
	r := h.victim.Wait(time.Second)
	h.t.Fatalf("victim exited (code %d, signal %v):\n%s", r.Code, r.Signal, r.Stderr)
}

// newSegment makes the hunt's segment with the shared words and the kind's
// object.
func (h *hunt) newSegment() {
	size := h.k.segSize
	if size == 0 {
		size = 1 << 20
	}
	seg, err := shm.Create(h.name, &shm.Options{Size: size})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { seg.Close() })
	h.seg = seg
	mem, err := seg.Alloc(huntSpec, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.words = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), hwWords)
	h.k.setup(h)
}

func (h *hunt) start() {
	h.victim = proctest.Start(h.t, "window-victim", h.k.name, h.name)
	h.victim.Expect(proctest.Ready, 0)
}

func TestWindows(t *testing.T) {
	for _, k := range windowKinds {
		t.Run(k.name, func(t *testing.T) { runHunt(t, k) })
	}
}

func runHunt(t *testing.T, k *windowKind) {
	want, budget := *windowHits, *windowBudget
	if want <= 0 {
		want = 1
	}
	if budget <= 0 {
		budget = 40 * time.Second // a bound, not the usual: most kinds take well under a second
		if *windowHits > 0 {
			budget = 30 * time.Minute
		}
	}
	h := &hunt{t: t, k: k, name: proctest.TempName(t)}
	h.newSegment()
	h.start()
	defer func() {
		if h.victim != nil {
			h.victim.Kill()
			<-h.victim.Done()
		}
	}()

	hits := make([]int, len(k.windows))
	stops := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	start := time.Now()
	reached := func() bool {
		for _, n := range hits {
			if n < want {
				return false
			}
		}
		return true
	}
	report := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %d stops in %v;", k.name, stops, time.Since(start).Round(time.Millisecond))
		for i, n := range hits {
			fmt.Fprintf(&b, " [%s]=%d", k.windows[i], n)
		}
		return b.String()
	}
	lastReport := start
	near := false
	for !reached() && time.Since(start) < budget && !t.Failed() {
		if *windowHits > 0 && time.Since(lastReport) > 30*time.Second {
			fmt.Fprintln(os.Stderr, "windows (so far):", report())
			lastReport = time.Now()
		}
		// After a stop inside a window already hit, stop again at once:
		// windows come in program order, and the next one (often only a
		// few instructions long) is most likely just ahead.
		if n := rng.IntN(4); n > 0 && !near {
			time.Sleep(time.Duration(rng.IntN(200*n)) * time.Microsecond)
		}
		near = false
		h.stop()
		stops++
		w := k.inspect(h)
		near = w >= 0 && hits[w] >= want
		if w < 0 || hits[w] >= want {
			if err := syscall.Kill(h.victim.Pid(), syscall.SIGCONT); err != nil && err != syscall.ESRCH {
				t.Fatal(err)
			}
			continue // (ESRCH: it exited; the next stop finds out)
		}
		h.victim.Kill()
		<-h.victim.Done()
		h.victim = nil
		hits[w]++
		if err := k.after(h, w); err != nil {
			t.Fatalf("after a kill in window %q (hit %d): %v", k.windows[w], hits[w], err)
		}
		h.start()
	}
	el := time.Since(start)
	t.Log(report())
	fmt.Fprintln(os.Stderr, "windows:", report())
	for i, n := range hits {
		if n < want {
			t.Errorf("%s: window %q hit %d times in %d stops (%v), want %d: not reached", k.name, k.windows[i], n, stops, el.Round(time.Millisecond), want)
		}
	}
}

// ---- Condition ----------------------------------------------------------

// The Condition (own RLock, one waiter slot) in the hunt's segment, at
// its documented layout: bitmap at 192, slot 0 at 256 (state word, then
// the owner at +8).
const (
	cvBitmap = 192
	cvSlot0  = 256
)

var cvSpec = shm.Spec{Name: "cv", Kind: shm.KindCondition, KindVersion: condition.Version}

func init() {
	addWindowKind(&windowKind{
		name: "condition",
		windows: []string{
			"bit set over a free slot (register before publishing, or free between state and bit)",
			"registered, lock not yet released",
			"waiting, lock released",
			"lock taken back, slot not yet freed",
		},
		setup: func(h *hunt) {
			c, err := condition.Create(h.seg, "cv", "", &condition.Options{Slots: 1, CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = c
		},
		victim: func(seg *shm.Segment, words []uint64) error {
			c, err := condition.Open(seg, "cv", &condition.Options{CheckInterval: wCheck})
			if err != nil {
				return err
			}
			proctest.SignalReady()
			for {
				if err := c.Acquire(context.Background()); err != nil {
					return err
				}
				if ok, err := c.WaitTimeout(time.Microsecond); ok || err != nil {
					return fmt.Errorf("WaitTimeout on an idle condition = %v, %v", ok, err)
				}
				if err := c.Release(); err != nil {
					return err
				}
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			c := h.obj.(*condition.Condition)
			mem := h.lookup(cvSpec)
			bit := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[cvBitmap])))&1 != 0
			s := atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[cvSlot0]))) & 7
			st := c.State()
			held := st.Held && st.HolderPid == h.victim.Pid()
			switch {
			case !bit:
				return -1
			case s == 0:
				return 0
			case (s == 1 || s == 2) && held:
				return 1
			case s == 1 || s == 2:
				return 2
			case (s == 3 || s == 4) && held:
				return 3
			}
			return -1
		},
		after: func(h *hunt, w int) error {
			c := h.obj.(*condition.Condition)
			rl := c.Lock().(*rlock.RLock)
			// The lock: ErrOwnerDead exactly when the victim held it.
			ok, err := c.AcquireTimeout(5 * time.Second)
			heldByVictim := w != 2
			switch {
			case !ok:
				return fmt.Errorf("Acquire: %v, %v", ok, err)
			case errors.Is(err, condition.ErrOwnerDead) && heldByVictim:
				if err := rl.Consistent(); err != nil {
					return fmt.Errorf("Consistent: %w", err)
				}
			case err != nil || heldByVictim:
				return fmt.Errorf("Acquire after a kill with the lock held=%v: %v", heldByVictim, err)
			}
			// The only slot is the dead victim's (or free): Wait on the idle
			// Condition times out cleanly, again and again.
			for i := 0; i < 5; i++ {
				if ok, err := c.WaitTimeout(2 * time.Millisecond); ok || err != nil {
					return fmt.Errorf("WaitTimeout %d on the idle condition = %v, %v", i, ok, err)
				}
			}
			if err := c.Release(); err != nil {
				return err
			}
			// A Notify reaches a waiter, three times.
			for i := 0; i < 3; i++ {
				res := make(chan error, 1)
				go func() {
					if err := c.Acquire(context.Background()); err != nil {
						res <- err
						return
					}
					ok, err := c.WaitTimeout(10 * time.Second)
					c.Release()
					if !ok || err != nil {
						err = fmt.Errorf("waiter: notified %v, %v", ok, err)
					}
					res <- err
				}()
				deadline := time.Now().Add(10 * time.Second)
				for c.State().Waiters != 1 {
					if time.Now().After(deadline) {
						return fmt.Errorf("waiter never waits: %+v", c.State())
					}
					time.Sleep(100 * time.Microsecond)
				}
				c.Acquire(context.Background())
				c.Notify(1)
				c.Release()
				if err := <-res; err != nil {
					return err
				}
			}
			if st := c.State(); st.Waiters != 0 || st.Notified != 0 || st.Held {
				return fmt.Errorf("State after use: %+v", st)
			}
			return nil
		},
	})
}

// ---- JoinableQueue ------------------------------------------------------

// The JoinableQueue(8, 16) at its documented layout: slot i's word at
// 384 + 128i (sequence low half, claim high half), then 40 taker entries
// of 16 bytes (claim id and count in the first word).
const (
	jqCap    = 8
	jqStride = 128
	jqTakers = 384 + jqCap*jqStride
)

var jqSpec = shm.Spec{Name: "jq", Kind: shm.KindJoinableQueue, KindVersion: ringbuf.QueueVersion}

// claimOf is a queue claim id: registry slot, and 14 generation bits
// above it (see ringbuf's queue.go).
func claimOf(packed uint64) uint32 {
	return uint32(packed)&(1<<17-1) | (uint32(packed>>32)&(1<<14-1))<<17
}

func init() {
	addWindowKind(&windowKind{
		name: "joinable",
		windows: []string{
			"put claimed, not committed",
			"take counted, message still in the ring",
			"message taken, Get not returned",
			"task taken, TaskDone not called",
		},
		setup: func(h *hunt) {
			j, err := ringbuf.CreateJoinable(h.seg, "jq", jqCap, 16, &ringbuf.Options{CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = j
		},
		// Words: hwA puts returned, hwB gets returned, hwC TaskDones
		// returned.
		victim: func(seg *shm.Segment, words []uint64) error {
			j, err := ringbuf.OpenJoinable(seg, "jq", &ringbuf.Options{CheckInterval: wCheck})
			if err != nil {
				return err
			}
			proctest.SignalReady()
			for i := uint64(0); ; i++ {
				if err := j.Put(context.Background(), []byte(strconv.FormatUint(i, 10))); err != nil {
					return err
				}
				atomic.AddUint64(&words[hwA], 1)
				m, err := j.Get(context.Background())
				if err != nil {
					return err
				}
				if string(m) != strconv.FormatUint(i, 10) {
					return fmt.Errorf("got %q, want %d", m, i)
				}
				atomic.AddUint64(&words[hwB], 1)
				if err := j.TaskDone(); err != nil {
					return err
				}
				atomic.AddUint64(&words[hwC], 1)
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(jqSpec)
			me := claimOf(h.w(hwSelf))
			held := h.w(hwB) - h.w(hwC) // tasks the victim took and has not done
			var inRing, count uint64
			putClaimed := false
			for i := 0; i < jqCap; i++ {
				w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[384+i*jqStride])))
				seq, claim := uint32(w), uint32(w>>32)
				switch {
				case claim>>30 == 2:
					inRing++
				case claim == me && seq%jqCap == uint32(i):
					putClaimed = true
				}
			}
			for e := 0; e < 40; e++ {
				w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[jqTakers+16*e])))
				if uint32(w>>32) == me {
					count += uint64(uint32(w))
				}
			}
			switch {
			case putClaimed:
				return 0
			case count == held+1 && inRing == 1:
				return 1
			case count == held+1 && inRing == 0:
				return 2
			case count == 1 && held == 1:
				return 3
			}
			return -1
		},
		after: func(h *hunt, w int) error {
			j := h.obj.(*ringbuf.JoinableQueue)
			put, got := h.w(hwA), h.w(hwB)
			// Drain what the victim left; every message is a task.
			drained := uint64(0)
			for {
				_, err := j.TryGet()
				if errors.Is(err, ringbuf.ErrEmpty) {
					break
				}
				if err != nil {
					return fmt.Errorf("drain: %w", err)
				}
				drained++
				if err := j.TaskDone(); err != nil {
					return fmt.Errorf("drain TaskDone: %w", err)
				}
			}
			// The victim's message: not yet a task (0), still in the ring
			// (1: counted taken before the take, never lost), taken by the
			// victim (2), or done by nobody but counted done (3).
			wantDrained := put - got
			if w == 2 {
				wantDrained--
			}
			if drained != wantDrained {
				return fmt.Errorf("drained %d messages, want %d (%d puts, %d gets returned)", drained, wantDrained, put, got)
			}
			if ok, err := j.JoinTimeout(5 * time.Second); !ok || err != nil {
				return fmt.Errorf("Join after the drain = %v, %v: %+v", ok, err, j.State())
			}
			if n := j.Unfinished(); n != 0 {
				return fmt.Errorf("Unfinished = %d", n)
			}
			for i := 0; i < 20; i++ {
				msg := []byte(strconv.Itoa(i))
				if err := j.Put(context.Background(), msg); err != nil {
					return err
				}
				if ok, _ := j.TryJoin(); ok {
					return fmt.Errorf("TryJoin true with a task in the ring")
				}
				m, err := j.GetTimeout(5 * time.Second)
				if err != nil || string(m) != string(msg) {
					return fmt.Errorf("Get = %q, %v, want %q", m, err, msg)
				}
				if ok, _ := j.TryJoin(); ok {
					return fmt.Errorf("TryJoin true with a task taken and not done")
				}
				if err := j.TaskDone(); err != nil {
					return err
				}
			}
			if ok, err := j.JoinTimeout(5 * time.Second); !ok || err != nil {
				return fmt.Errorf("Join after use = %v, %v", ok, err)
			}
			if err := j.TaskDone(); !errors.Is(err, ringbuf.ErrTaskDone) {
				return fmt.Errorf("extra TaskDone = %v", err)
			}
			return nil
		},
	})
}

// ---- Barrier ------------------------------------------------------------

// The Barrier(2)'s state word at offset 0: bit 1 draining, bit 2 broken,
// bits 3..12 count.
var barSpec = shm.Spec{Name: "bar", Kind: shm.KindBarrier, KindVersion: barrier.Version}

func init() {
	addWindowKind(&windowKind{
		name: "barrier",
		windows: []string{
			"arrival counted, round not complete",
			"last arrival counted, round not released (action)",
			"released, a waiter not yet left",
		},
		setup: func(h *hunt) {
			b, err := barrier.Create(h.seg, "bar", 2, &barrier.Options{Observe: true, CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = b
		},
		// The victim is both parties: two goroutines, two handles.
		victim: func(seg *shm.Segment, words []uint64) error {
			var bs [2]*barrier.Barrier
			for i := range bs {
				var err error
				bs[i], err = barrier.Open(seg, "bar", &barrier.Options{CheckInterval: wCheck, Action: func() error {
					atomic.AddUint64(&words[hwA], 1)
					return nil
				}})
				if err != nil {
					return err
				}
			}
			proctest.SignalReady()
			errc := make(chan error, 2)
			for _, b := range bs {
				go func() {
					for {
						if _, err := b.Wait(context.Background()); err != nil {
							errc <- err
							return
						}
						atomic.AddUint64(&words[hwIters], 1)
					}
				}()
			}
			return <-errc
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(barSpec)
			s := atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[0])))
			cnt := s >> 3 & (1<<10 - 1)
			switch {
			case s&4 != 0:
				return -1
			case s&2 == 0 && cnt == 1:
				return 0
			case s&2 == 0 && cnt == 2:
				return 1
			case s&2 != 0 && cnt == 1:
				return 2
			}
			return -1
		},
		after: func(h *hunt, w int) error {
			obs := h.obj.(*barrier.Barrier)
			var bs [2]*barrier.Barrier
			for i := range bs {
				var err error
				if bs[i], err = barrier.Open(h.seg, "bar", &barrier.Options{CheckInterval: wCheck}); err != nil {
					return fmt.Errorf("Open after the kill: %w", err)
				}
				defer bs[i].Close()
			}
			// Rounds counts every released round, including one whose
			// releaser was killed before it counted it (window 2).
			rounds := obs.Rounds()
			// One Wait: it completes a round with the dead party's arrival,
			// or finds the dead party and breaks; never hangs.
			_, err := bs[0].WaitTimeout(5 * time.Second)
			if err != nil && (!errors.Is(err, barrier.ErrBrokenBarrier) || errors.Is(err, barrier.ErrTimedOut)) {
				return fmt.Errorf("first Wait after the kill: %w", err)
			}
			if err == nil {
				rounds++
			}
			obs.Reset()
			var wg sync.WaitGroup
			var idx [2][20]int
			var errs [2]error
			for i := range bs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range idx[i] {
						var err error
						if idx[i][r], err = bs[i].WaitTimeout(10 * time.Second); err != nil {
							errs[i] = fmt.Errorf("round %d: %w", r, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := errors.Join(errs[:]...); err != nil {
				return err
			}
			for r := range idx[0] {
				if idx[0][r]+idx[1][r] != 1 {
					return fmt.Errorf("round %d: indices %d and %d", r, idx[0][r], idx[1][r])
				}
			}
			if got, want := obs.Rounds(), rounds+uint64(len(idx[0])); got != want {
				return fmt.Errorf("%d rounds counted, want %d", got, want)
			}
			return nil
		},
	})
}

// specOf returns the Spec of object name in the hunt's segment, as its
// directory entry says (for kinds with a type fingerprint).
func (h *hunt) specOf(name string) shm.Spec {
	objs, err := h.seg.Objects()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, o := range objs {
		if o.Name == name {
			return shm.Spec{Name: name, Kind: o.Kind, KindVersion: o.KindVersion, Fingerprint: o.Fingerprint}
		}
	}
	h.t.Fatalf("no object %q", name)
	return shm.Spec{}
}

// heldBy reports whether robust lock word w names the process whose
// registry identity is packed (slot in bits 0..16, generation in the high
// half; see internal/robust).
func heldBy(w, packed uint64) bool {
	return packed != 0 && w&(1<<17-1) == packed&(1<<17-1) && w>>32 == packed>>32
}

// ---- RLock --------------------------------------------------------------

// The RLock at its documented layout: lock word at 0, owner goroutine at
// 16, extra recursion levels at 24.
var rlSpec = shm.Spec{Name: "rl", Kind: shm.KindRLock, KindVersion: rlock.Version}

func init() {
	addWindowKind(&windowKind{
		name: "rlock",
		windows: []string{
			"lock word held, owner goroutine not recorded (acquire before, or release after clearing it)",
			"held at level 1",
			"held at a level above 1 (extra levels recorded)",
			"guarded pair torn under the lock",
		},
		setup: func(h *hunt) {
			if _, err := rlock.Create(h.seg, "rl", &rlock.Options{CheckInterval: wCheck}); err != nil {
				h.t.Fatal(err)
			}
			r, err := rlock.Open(h.seg, "rl", &rlock.Options{CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = r
		},
		// Words hwA and hwB: a pair the lock guards, equal when the lock is
		// free.
		victim: func(seg *shm.Segment, words []uint64) error {
			r, err := rlock.Open(seg, "rl", &rlock.Options{CheckInterval: wCheck})
			if err != nil {
				return err
			}
			proctest.SignalReady()
			for {
				for l := 1; l <= 3; l++ {
					if err := r.Acquire(context.Background()); err != nil {
						return err
					}
					if r.Level() != l {
						return fmt.Errorf("level %d, want %d", r.Level(), l)
					}
				}
				atomic.AddUint64(&words[hwA], 1)
				atomic.AddUint64(&words[hwB], 1)
				for l := 0; l < 3; l++ {
					if err := r.Release(); err != nil {
						return err
					}
				}
				if err := r.Acquire(context.Background()); err != nil {
					return err
				}
				r.Release()
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(rlSpec)
			w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[0])))
			if !heldBy(w, h.w(hwSelf)) {
				return -1
			}
			owner := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[16])))
			extra := atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[24])))
			switch {
			case h.w(hwA) != h.w(hwB):
				return 3
			case owner == 0:
				return 0
			case extra == 0:
				return 1
			default:
				return 2
			}
		},
		after: func(h *hunt, w int) error {
			r := h.obj.(*rlock.RLock)
			ok, err := r.AcquireTimeout(5 * time.Second)
			if !ok || !errors.Is(err, rlock.ErrOwnerDead) {
				return fmt.Errorf("AcquireTimeout after the holder died = %v, %v", ok, err)
			}
			if l := r.Level(); l != 1 {
				return fmt.Errorf("level %d after the takeover, want 1", l)
			}
			// Repair the guarded pair, then mark the lock consistent.
			a := atomic.LoadUint64(&h.words[hwA])
			if b := atomic.LoadUint64(&h.words[hwB]); b != a {
				if w != 3 {
					return fmt.Errorf("guarded pair torn (%d, %d) outside its window", a, b)
				}
				atomic.StoreUint64(&h.words[hwB], a)
			}
			if err := r.Consistent(); err != nil {
				return err
			}
			if err := r.Release(); err != nil {
				return err
			}
			for i := 0; i < 20; i++ {
				for l := 1; l <= 3; l++ {
					if ok, err := r.AcquireTimeout(5 * time.Second); !ok || err != nil {
						return fmt.Errorf("Acquire at level %d: %v, %v", l, ok, err)
					}
					if r.Level() != l {
						return fmt.Errorf("level %d, want %d", r.Level(), l)
					}
				}
				for l := 0; l < 3; l++ {
					if err := r.Release(); err != nil {
						return err
					}
				}
			}
			if st := r.State(); st.Held || st.Inconsistent || st.NotRecoverable {
				return fmt.Errorf("State after use: %+v", st)
			}
			return nil
		},
	})
}

// ---- Value (wider than 8 bytes: seqlock double buffer) -------------------

// The Value[[64]uint64] at its documented layout: sequence at 32, writer
// lock word at 40, slots of 512 bytes at 128 and 640; the current value
// is in slot sequence&1. (512 bytes: a copy long enough to be caught in.)
type wideVal [64]uint64

func wideOf(x uint64) (v wideVal) {
	for i := range v {
		v[i] = x
	}
	return v
}

func init() {
	addWindowKind(&windowKind{
		name: "value",
		windows: []string{
			"writer lock held, unpublished slot torn",
			"unpublished slot written, sequence not yet advanced",
			"writer lock held, slots consistent (before writing, or after publishing)",
		},
		setup: func(h *hunt) {
			v, err := value.Create(h.seg, "val", wideVal{}, &value.Options{CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = v
		},
		// Word hwA: the last value whose Store returned.
		victim: func(seg *shm.Segment, words []uint64) error {
			v, err := value.Open[wideVal](seg, "val", &value.Options{CheckInterval: wCheck})
			if err != nil {
				return err
			}
			proctest.SignalReady()
			x := v.Load()[0]
			for {
				x++
				v.Store(wideOf(x))
				atomic.StoreUint64(&words[hwA], x)
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(h.specOf("val"))
			lw := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[40])))
			if !heldBy(lw, h.w(hwSelf)) {
				return -1
			}
			seq := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[32])))
			slot := func(i uint64) (v uint64, torn bool) {
				off := 128 + int(i&1)*512
				v = atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[off])))
				for k := 1; k < 64; k++ {
					if atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[off+8*k]))) != v {
						torn = true
					}
				}
				return v, torn
			}
			cur, ctorn := slot(seq)
			next, ntorn := slot(seq + 1)
			switch {
			case ctorn:
				return -1 // never: the hunter's check below fails on it
			case ntorn:
				return 0
			case next == cur+1:
				return 1
			default:
				return 2
			}
		},
		after: func(h *hunt, w int) error {
			v := h.obj.(*value.Value[wideVal])
			x := v.Load()
			for k := 1; k < 64; k++ {
				if x[k] != x[0] {
					return fmt.Errorf("Load after the kill is torn: %v", x)
				}
			}
			if last := h.w(hwA); x[0] != last && x[0] != last+1 {
				return fmt.Errorf("Load after the kill = %d, last Store returned %d", x[0], last)
			}
			// The dead writer's lock is taken over by the next Store.
			for i := uint64(1); i <= 20; i++ {
				done := make(chan struct{})
				go func() {
					v.Store(wideOf(x[0] + i))
					close(done)
				}()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					return fmt.Errorf("Store %d hangs", i)
				}
				if y := v.Load(); y != wideOf(x[0]+i) {
					return fmt.Errorf("Load after Store %d = %v", x[0]+i, y)
				}
			}
			// The writer lock guards nothing that can be torn: taking
			// it over marks nothing (see package value).
			if err := v.Err(); err != nil {
				return fmt.Errorf("Err after a dead writer's Store: %v", err)
			}
			return nil
		},
	})
}

// ---- Queue --------------------------------------------------------------

var qSpec = shm.Spec{Name: "q", Kind: shm.KindQueue, KindVersion: ringbuf.QueueVersion}

func init() {
	addWindowKind(&windowKind{
		name: "queue",
		windows: []string{
			"put claimed, not committed",
			"message borrowed (claimed by a consumer), not released",
		},
		setup: func(h *hunt) {
			q, err := ringbuf.Create(h.seg, "q", jqCap, 16, &ringbuf.Options{CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = q
		},
		// Words: hwA puts returned, hwB messages taken (Get returned, or
		// Release of a Borrow returned).
		victim: func(seg *shm.Segment, words []uint64) error {
			q, err := ringbuf.Open(seg, "q", &ringbuf.Options{CheckInterval: wCheck})
			if err != nil {
				return err
			}
			proctest.SignalReady()
			buf := make([]byte, 16)
			for i := uint64(0); ; i++ {
				want := strconv.FormatUint(i, 10)
				if err := q.Put(context.Background(), []byte(want)); err != nil {
					return err
				}
				atomic.AddUint64(&words[hwA], 1)
				if i%2 == 0 {
					b, err := q.Borrow(context.Background())
					if err != nil {
						return err
					}
					if string(b.Bytes()) != want {
						return fmt.Errorf("borrowed %q, want %s", b.Bytes(), want)
					}
					if err := b.Release(); err != nil {
						return err
					}
				} else {
					n, err := q.GetInto(context.Background(), buf)
					if err != nil {
						return err
					}
					if string(buf[:n]) != want {
						return fmt.Errorf("got %q, want %s", buf[:n], want)
					}
				}
				atomic.AddUint64(&words[hwB], 1)
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(qSpec)
			me := claimOf(h.w(hwSelf))
			for i := 0; i < jqCap; i++ {
				w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[384+i*jqStride])))
				seq, claim := uint32(w), uint32(w>>32)
				if claim != me {
					continue
				}
				if seq%jqCap == uint32(i) {
					return 0
				}
				return 1
			}
			return -1
		},
		after: func(h *hunt, w int) error {
			q := h.obj.(*ringbuf.Queue)
			put, got := h.w(hwA), h.w(hwB)
			// What the victim left in the ring: nothing, its claimed
			// message lost (0), or the borrowed one lost (1). The next Put
			// lands behind the dead claim, which consumers resolve after a
			// check interval.
			if err := q.Put(context.Background(), []byte("after")); err != nil {
				return err
			}
			drained := uint64(0)
			for {
				m, err := q.GetTimeout(5 * time.Second)
				if err != nil {
					return fmt.Errorf("drain after %d: %w (%+v)", drained, err, q.State())
				}
				if string(m) == "after" {
					break
				}
				drained++
			}
			want := put - got
			if w == 1 {
				want--
			}
			if drained != want {
				return fmt.Errorf("drained %d messages before ours, want %d (%d puts, %d takes returned)", drained, want, put, got)
			}
			if !q.Empty() {
				return fmt.Errorf("queue not empty after the drain: %+v", q.State())
			}
			for i := 0; i < 20; i++ {
				msg := []byte(strconv.Itoa(i))
				if err := q.Put(context.Background(), msg); err != nil {
					return err
				}
				if m, err := q.GetTimeout(5 * time.Second); err != nil || string(m) != string(msg) {
					return fmt.Errorf("Get = %q, %v, want %q", m, err, msg)
				}
			}
			return nil
		},
	})
}

// ---- Pipe ---------------------------------------------------------------

// The Pipe (16 KiB rings) at its documented layout: ring 0 (messages
// to end 0) at 192, its tail at +0, head at +64, data at +256. Records are
// an 8-byte header (n, ^n), then padding that starts a payload of 256
// bytes or more on a 64-byte boundary, then n payload bytes padded to 8;
// the victim's messages are 4000 bytes (seq, ^seq, filler), long enough to
// be caught writing one.
const (
	pRing0   = 192
	pCap     = 16384
	pMsgSize = 4000
)

// pPayload is where the payload of the record at pos starts.
func pPayload(pos uint64) uint64 { return (pos + 8 + 63) &^ 63 }

// pNext is where the record after the one at pos starts: every message in
// the hunt is pMsgSize bytes.
func pNext(pos uint64) uint64 { return pPayload(pos) + pMsgSize }

var pSpec = shm.Spec{Name: "p", Kind: shm.KindPipe, KindVersion: ringbuf.PipeVersion}

func pMsg(seq uint64) []byte {
	b := make([]byte, pMsgSize)
	binary.LittleEndian.PutUint64(b, seq)
	binary.LittleEndian.PutUint64(b[8:], ^seq)
	for i := 16; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func init() {
	addWindowKind(&windowKind{
		name: "pipe",
		windows: []string{
			"record written, tail not yet published",
			"record consumed (head published), Recv not returned",
		},
		setup: func(h *hunt) {
			c, err := ringbuf.CreatePipe(h.seg, "p", &ringbuf.PipeOptions{Capacity: pCap, MaxMsgSize: pMsgSize, CheckInterval: wCheck})
			if err != nil {
				h.t.Fatal(err)
			}
			c.Detach() // the victim holds both ends; the survivor claims them after
			h.obj = &[2]*ringbuf.Conn{}
		},
		// The victim holds both ends: one goroutine sends on end 1, one
		// receives on end 0. Words: hwA sends returned, hwB receives
		// returned.
		victim: func(seg *shm.Segment, words []uint64) error {
			o := &ringbuf.PipeOptions{CheckInterval: wCheck}
			rx, err := ringbuf.OpenPipe(seg, "p", 0, o)
			if err != nil {
				return err
			}
			tx, err := ringbuf.OpenPipe(seg, "p", 1, o)
			if err != nil {
				return err
			}
			proctest.SignalReady()
			errc := make(chan error, 2)
			go func() {
				msg := pMsg(0)
				for seq := uint64(0); ; seq++ {
					binary.LittleEndian.PutUint64(msg, seq)
					binary.LittleEndian.PutUint64(msg[8:], ^seq)
					if err := tx.Send(context.Background(), msg); err != nil {
						errc <- err
						return
					}
					atomic.AddUint64(&words[hwA], 1)
				}
			}()
			go func() {
				buf := make([]byte, pMsgSize)
				for {
					n, err := rx.Recv(context.Background(), buf)
					if err != nil {
						errc <- err
						return
					}
					want := atomic.LoadUint64(&words[hwB])
					if n != pMsgSize || binary.LittleEndian.Uint64(buf) != want || binary.LittleEndian.Uint64(buf[8:]) != ^want || buf[pMsgSize-1] != byte((pMsgSize-1)%256) {
						errc <- fmt.Errorf("received %x..., want message %d", buf[:16], want)
						return
					}
					atomic.AddUint64(&words[hwB], 1)
					atomic.AddUint64(&words[hwIters], 1)
				}
			}()
			return <-errc
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(pSpec)
			ring := mem[pRing0:]
			tail := atomic.LoadUint64((*uint64)(unsafe.Pointer(&ring[0])))
			head := atomic.LoadUint64((*uint64)(unsafe.Pointer(&ring[64])))
			data := ring[256 : 256+pCap]
			seqAt := func(pos uint64) (uint64, bool) {
				hd := binary.LittleEndian.Uint64(data[pos%pCap:])
				if uint32(hd) != pMsgSize || uint32(hd>>32) != ^uint32(pMsgSize) {
					return 0, false
				}
				var p [16]byte
				for i := range p {
					p[i] = data[(pPayload(pos)+uint64(i))%pCap]
				}
				s := binary.LittleEndian.Uint64(p[:])
				return s, binary.LittleEndian.Uint64(p[8:]) == ^s
			}
			sent, got := h.w(hwA), h.w(hwB)
			if pNext(tail)-head <= pCap { // room for the next record
				k, p := uint64(0), head // records published after head
				for ; p < tail; p = pNext(p) {
					k++
				}
				if s, ok := seqAt(tail); ok && s == sent && p == tail && s == got+k {
					return 0
				}
			}
			// The record that ends at head: its header lies 8 to 64 bytes
			// before its 64-aligned payload.
			if q := head - pMsgSize; head >= pMsgSize+8 && q%64 == 0 {
				for p := q - 8; p+64 >= q && p < q; p -= 8 {
					if s, ok := seqAt(p); ok && pPayload(p) == q && s == got {
						return 1
					}
				}
			}
			return -1
		},
		after: func(h *hunt, w int) error {
			sent, got := h.w(hwA), h.w(hwB)
			o := &ringbuf.PipeOptions{CheckInterval: wCheck}
			rx, err := ringbuf.OpenPipe(h.seg, "p", 0, o)
			if err != nil {
				return fmt.Errorf("claiming the dead end 0: %w", err)
			}
			defer rx.Detach()
			tx, err := ringbuf.OpenPipe(h.seg, "p", 1, o)
			if err != nil {
				return fmt.Errorf("claiming the dead end 1: %w", err)
			}
			defer tx.Detach()
			// Drain: the published records, intact and in order, after the
			// last one the victim's Recv returned (or the one it consumed).
			first := got
			if w == 1 {
				first++
			}
			buf := make([]byte, pMsgSize)
			next := first
			for {
				n, err := rx.TryRecv(buf)
				if errors.Is(err, ringbuf.ErrEmpty) {
					break
				}
				if err != nil {
					return fmt.Errorf("drain: %w", err)
				}
				if n != pMsgSize || string(buf) != string(pMsg(next)) {
					return fmt.Errorf("drained %x..., want message %d", buf[:16], next)
				}
				next++
			}
			// Every Send that returned was received; a record written and
			// not published (window 0) is lost; in window 1 the sender may
			// have published one more whose Send had not returned.
			if next != sent && (w == 0 || next != sent+1) {
				return fmt.Errorf("drained up to message %d, victim's Sends returned %d (Recvs %d)", next, sent, got)
			}
			for i := 0; i < 20; i++ {
				if err := tx.SendTimeout(pMsg(next), 5*time.Second); err != nil {
					return err
				}
				n, err := rx.RecvTimeout(buf, 5*time.Second)
				if err != nil || n != pMsgSize || string(buf) != string(pMsg(next)) {
					return fmt.Errorf("Recv = %x..., %v, want message %d", buf[:16], err, next)
				}
				next++
			}
			return nil
		},
	})
}

// ---- Segment directory --------------------------------------------------

// The segment header at its documented layout (shm/layout.go): directory
// capacity at 12, segment lock word at 64, directory entries of 96 bytes
// from 192 (state at +0, object offset at +16, size at +24, creator at
// +32, name at +48). Free space is what no entry in use covers.
const (
	sgCapacity = 12
	sgLock     = 64
	sgDir      = 192
	sgEntry    = 96

	sgFree  = 0 // entry states: never used
	sgInit  = 1
	sgDying = 3
	sgGone  = 4 // free again

	sgCreating   = 1 // hwB: the victim is in Alloc
	sgDestroying = 2 // hwB: the victim is in Destroy
)

var errInitRefused = errors.New("init refused")

// sgName is the object name the victim allocates at iteration k: two
// names in turn, so that an entry left from the previous iteration never
// carries the current one.
func sgName(k uint64) string { return "o" + strconv.FormatUint(k%2, 10) }

func sgHeader(h *hunt) []byte { return h.obj.([]byte) }

// sgEntriesOf returns the directory entries named name: the current one
// and any left free again (state 4) by earlier objects of that name, which
// keep their name.
func sgEntriesOf(hdr []byte, name string) [][]byte {
	var es [][]byte
	n := int(atomic.LoadUint32((*uint32)(unsafe.Pointer(&hdr[sgCapacity]))))
	for i := 0; i < n && sgDir+(i+1)*sgEntry <= len(hdr); i++ {
		e := hdr[sgDir+i*sgEntry : sgDir+(i+1)*sgEntry]
		raw := e[48:]
		if j := strings.IndexByte(string(raw), 0); j >= 0 && string(raw[:j]) == name {
			es = append(es, e)
		}
	}
	return es
}

func init() {
	addWindowKind(&windowKind{
		name: "segment",
		windows: []string{
			"Alloc: entry fields written, entry not yet reserved (lock held)",
			"Alloc: entry reserved (initializing), segment lock held",
			"Alloc: entry initializing, lock released (init running)",
			"Destroy: entry dying, segment lock held (holders being checked)",
			"Destroy: entry freed, segment lock still held",
		},
		segSize: 4 << 20,
		setup: func(h *hunt) {
			if old, ok := h.obj.([]byte); ok {
				syscall.Munmap(old)
			}
			hdr, err := proctest.MapFile(h.seg.Path())
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = hdr
			h.t.Cleanup(func() { syscall.Munmap(hdr) })
		},
		// The victim allocates objects of a few sizes and destroys them;
		// every third init fails (the entry and its space are freed).
		// Destroyed and failed objects' space is reused, so it never uses
		// the segment up. Word hwA: the iteration; hwB: in Alloc or in
		// Destroy.
		victim: func(seg *shm.Segment, words []uint64) error {
			proctest.SignalReady()
			for k := uint64(1); ; k++ {
				atomic.StoreUint64(&words[hwA], k)
				atomic.StoreUint64(&words[hwB], sgCreating)
				name := sgName(k)
				mem, err := seg.Alloc(shm.Spec{Name: name, Kind: shm.KindBytes, KindVersion: 1, Size: 64 << (k % 5)}, func([]byte) error {
					if k%3 == 0 {
						return errInitRefused
					}
					return nil
				})
				switch {
				case err == nil:
					seg.Release(mem)
					atomic.StoreUint64(&words[hwB], sgDestroying)
					if err := seg.Destroy(name); err != nil {
						return fmt.Errorf("Destroy %d: %v", k, err)
					}
				case errors.Is(err, errInitRefused):
				default:
					return fmt.Errorf("Alloc %d: %v", k, err)
				}
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			hdr := sgHeader(h)
			self := h.w(hwSelf)
			held := heldBy(atomic.LoadUint64((*uint64)(unsafe.Pointer(&hdr[sgLock]))), self)
			phase := h.w(hwB)
			// An entry in use wins over one free again (an earlier object
			// of the name, which may be this victim's too). An entry free
			// again counts only with this iteration's size (offset 24),
			// which the object two iterations back, of the same name and
			// creator, never has: so window 0 begins after the size is
			// written, and window 4 after this object's entry is freed.
			k := h.w(hwA)
			win := -1
			for _, e := range sgEntriesOf(hdr, sgName(k)) {
				st := atomic.LoadUint32((*uint32)(unsafe.Pointer(&e[0])))
				creator := atomic.LoadUint64((*uint64)(unsafe.Pointer(&e[32])))
				ours := atomic.LoadUint64((*uint64)(unsafe.Pointer(&e[24]))) == 64<<(k%5)
				switch {
				case creator != self:
				case st == sgInit && held:
					return 1
				case st == sgInit:
					return 2
				case st == sgDying && held:
					return 3
				case (st == sgFree || st == sgGone) && held && ours && phase == sgCreating:
					win = 0
				case (st == sgFree || st == sgGone) && held && ours && phase == sgDestroying:
					win = 4
				}
			}
			return win
		},
		after: func(h *hunt, w int) error {
			probe := func(name string, size int64) error {
				_, err := h.seg.Alloc(shm.Spec{Name: name, Kind: shm.KindBytes, KindVersion: 1, Size: size}, func([]byte) error { return errInitRefused })
				if !errors.Is(err, errInitRefused) {
					return fmt.Errorf("Alloc %q of %d bytes after the kill = %v, want the init's error", name, size, err)
				}
				return nil
			}
			// The segment lock (taken over if the victim died holding it,
			// and the directory repaired: an entry left dying is ready
			// again, one its dead creator left initializing is freed).
			if err := probe("probe", 64); err != nil {
				return err
			}
			objs, err := h.seg.Objects()
			if err != nil {
				return err
			}
			var hunt *shm.Object
			for i, o := range objs {
				switch {
				case !o.Ready:
					return fmt.Errorf("after a kill in window %d: %q left initializing by the dead: %+v", w, o.Name, objs)
				case o.Name == "hunt":
					hunt = &objs[i]
				case o.Name == sgName(h.w(hwA)):
					// Published and not yet destroyed (or its Destroy
					// undone): the dead victim's hold does not count.
					if err := h.seg.Destroy(o.Name); err != nil {
						return fmt.Errorf("Destroy of the dead victim's object: %v", err)
					}
				default:
					return fmt.Errorf("directory after the kill: %+v", objs)
				}
			}
			if hunt == nil {
				return fmt.Errorf("directory after the kill: no hunt: %+v", objs)
			}
			if st := h.seg.Info(); st.NumObjects != 1 || st.LockHolder != 0 {
				return fmt.Errorf("Info after the kill: %+v", st)
			}
			// No space lost: all of it after the hunt's words is one gap.
			end := hunt.Offset + (hunt.Size+shm.ObjectAlign-1)/shm.ObjectAlign*shm.ObjectAlign
			if err := probe("rest", h.seg.Size()-end); err != nil {
				return err
			}
			if err := probe(sgName(h.w(hwA)), 64); err != nil {
				return err
			}
			if _, err := h.seg.Lookup(huntSpec); err != nil {
				return err
			}
			return nil
		},
	})
}

// ---- Array --------------------------------------------------------------

// The Array[uint64] of 512 elements with its own lock, at its documented
// layout: the lock (package lock layout: lock word first) at 64, elements
// from 128.
const arrLen = 512

func init() {
	addWindowKind(&windowKind{
		name: "array",
		windows: []string{
			"lock held, elements torn (CopyIn in progress)",
			"lock held, elements whole (before or after the copy)",
		},
		setup: func(h *hunt) {
			a, err := array.Create[uint64](h.seg, "arr", arrLen, nil, nil)
			if err != nil {
				h.t.Fatal(err)
			}
			h.obj = a
		},
		// Word hwA: the value of the last CopyIn that returned.
		victim: func(seg *shm.Segment, words []uint64) error {
			a, err := array.Open[uint64](seg, "arr", nil)
			if err != nil {
				return err
			}
			proctest.SignalReady()
			buf := make([]uint64, arrLen)
			for x := a.At(0) + 1; ; x++ {
				for i := range buf {
					buf[i] = x
				}
				a.CopyIn(buf, 0)
				atomic.StoreUint64(&words[hwA], x)
				atomic.AddUint64(&words[hwIters], 1)
			}
		},
		inspect: func(h *hunt) int {
			mem := h.lookup(h.specOf("arr"))
			if !heldBy(atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[64]))), h.w(hwSelf)) {
				return -1
			}
			first := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[128])))
			for i := 1; i < arrLen; i++ {
				if atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[128+8*i]))) != first {
					return 0
				}
			}
			return 1
		},
		// A writer killed inside CopyIn leaves the elements it had copied.
		// The element method that takes the dead holder's lock over marks
		// the Array inconsistent (see package array). What the survivor
		// must see: no hang, elements each either the old or the new
		// value, ErrOwnerDead from Err and SetSlice in both windows (a
		// holder that died outside the copy cannot be told from one that
		// died inside it) until Consistent, and a working Array after it
		// rewrites them.
		after: func(h *hunt, w int) error {
			a := h.obj.(*array.Array[uint64])
			last := h.w(hwA)
			got := make([]uint64, arrLen)
			done := make(chan struct{})
			go func() { a.CopyOut(got, 0); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("CopyOut after the kill hangs")
			}
			torn := false
			for i, v := range got {
				if v != last && v != last+1 {
					return fmt.Errorf("element %d = %d after the kill, last CopyIn returned %d", i, v, last)
				}
				torn = torn || v != got[0]
			}
			if torn != (w == 0) {
				return fmt.Errorf("torn %v after a kill in window %d", torn, w)
			}
			if err := a.Err(); !errors.Is(err, array.ErrOwnerDead) {
				return fmt.Errorf("Err after taking a dead writer's lock over = %v, want ErrOwnerDead", err)
			}
			if err := a.SetSlice(0, 1, got[:1]); !errors.Is(err, array.ErrOwnerDead) {
				return fmt.Errorf("SetSlice before Consistent = %v, want ErrOwnerDead", err)
			}
			if err := a.Consistent(); err != nil {
				return fmt.Errorf("Consistent: %v", err)
			}
			buf := make([]uint64, arrLen)
			for x := last + 2; x < last+22; x++ {
				for i := range buf {
					buf[i] = x
				}
				a.CopyIn(buf, 0)
				a.CopyOut(got, 0)
				for i, v := range got {
					if v != x {
						return fmt.Errorf("element %d = %d after CopyIn of %d", i, v, x)
					}
				}
			}
			if st := a.State(); st.Lock == nil || st.Lock.Held || st.Inconsistent {
				return fmt.Errorf("State after use: %+v", st)
			}
			if err := a.Err(); err != nil {
				return fmt.Errorf("Err after Consistent: %v", err)
			}
			return nil
		},
	})
}
