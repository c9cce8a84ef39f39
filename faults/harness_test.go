//go:build linux

package faults_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

// The crash harness. A trial kills one participant at a random moment,
// checks what the kind promises, replaces the victim and checks that every
// survivor makes progress again within hangTimeout. Children live across
// trials; only the killed one is replaced.
//
// Shared bookkeeping lives in a KindBytes object "ctl" of the segment:
// global words (g) and, per worker slot, 8 words (s). Slot numbers are
// never reused, so a dead worker's words stay for the final check.

const (
	gStop       = 0 // 1: workers finish and exit
	gEpoch      = 1 // bumped by the parent (barrier reset, event round)
	gViolations = 2 // a worker saw state it must never see
	gOwnerDead  = 3 // acquires that returned ErrOwnerDead
	gRepairs    = 4 // of those, the ones that found the guarded state torn
	gPause      = 5 // 1: workers park at the top of their loop
	gPauseEpoch = 6
	gSlots      = 7  // slots in use: every worker slot is below it
	gFirstDone  = 8  // at the end: the workers of crashKind.first have exited
	gKindBase   = 16 // kind-specific global words from here
	gWords      = 512

	sProgress = 0 // operations completed
	sBlocking = 6 // 1 while the worker is inside a call that may sleep
	sPauseAck = 7 // the pause epoch this worker has parked for

	slotWords = 8

	hangTimeout = 15 * time.Second
)

type ctl struct{ mem []byte }

func ctlSize(slots int) int { return gWords*8 + slots*slotWords*8 }

func (c ctl) word(i int) *uint64 {
	if (i+1)*8 > len(c.mem) {
		panic("faults: ctl word out of range")
	}
	return (*uint64)(unsafe.Pointer(&c.mem[i*8]))
}
func (c ctl) g(i int) *uint64       { return c.word(i) }
func (c ctl) s(slot, i int) *uint64 { return c.word(gWords + slot*slotWords + i) }
func ld(p *uint64) uint64           { return atomic.LoadUint64(p) }
func st(p *uint64, v uint64)        { atomic.StoreUint64(p, v) }
func inc(p *uint64) uint64          { return atomic.AddUint64(p, 1) }

// crashKind is one primitive under the crash suite.
type crashKind struct {
	name    string
	workers []string             // the role of each initial worker
	extra   func(trials int) int // bytes of segment needed beyond ctl and 1 MiB, or nil
	setup   func(h *harness)
	// worker runs in the child until the stop flag is set, calling w.tick
	// after each completed operation.
	worker func(w *wctx) error
	// trial runs one trial; nil: kill a random worker at a random moment.
	trial func(h *harness)
	// check verifies conservation; final is true once every worker exited.
	check func(h *harness, final bool)
	// short, when set, is the number of trials of the short form.
	short int
	// beforeFinish runs after the stop flag is set, to wake workers that
	// the flag alone cannot reach.
	beforeFinish func(h *harness)
	// maxObjects is the directory capacity of the segment (0: default).
	maxObjects int
	// first lists the roles that finish waits for before it sets
	// gFirstDone (producers before consumers drain).
	first []string
	// dump, when set, describes the object's shared state for a hang
	// report (what every worker saw, not just the one that stalled).
	dump func(h *harness) string
}

var crashKinds = map[string]*crashKind{}

func addCrashKind(k *crashKind) { crashKinds[k.name] = k }

func init() { addRole("crash", crashChild) }

// wctx is a worker's view, in the child.
type wctx struct {
	seg  *shm.Segment
	c    ctl
	slot int
	role string
	rng  *rand.Rand
}

func (w *wctx) stopped() bool { return ld(w.c.g(gStop)) != 0 }

// blocking marks the worker as inside (true) or out of a call that may
// sleep, so that the parent can aim kills at slow paths.
func (w *wctx) blocking(b bool) {
	v := uint64(0)
	if b {
		v = 1
	}
	st(w.s(sBlocking), v)
}
func (w *wctx) s(i int) *uint64 { return w.c.s(w.slot, i) }

// tick counts one operation and parks while the parent pauses the workers.
func (w *wctx) tick() {
	inc(w.s(sProgress))
	w.park()
}

func (w *wctx) park() {
	for ld(w.c.g(gPause)) != 0 && !w.stopped() {
		st(w.s(sPauseAck), ld(w.c.g(gPauseEpoch)))
		time.Sleep(100 * time.Microsecond)
	}
}

func (w *wctx) violation(format string, args ...any) {
	inc(w.c.g(gViolations))
	fmt.Fprintf(os.Stderr, "violation (slot %d): %s\n", w.slot, fmt.Sprintf(format, args...))
}

func openCtl(seg *shm.Segment) (ctl, error) {
	mem, err := seg.Lookup(shm.Spec{Name: "ctl", Kind: shm.KindBytes, KindVersion: 1})
	return ctl{mem}, err
}

// crashChild: args kind, segment, slot, role.
func crashChild(args []string) error {
	k := crashKinds[args[0]]
	slot, _ := strconv.Atoi(args[2])
	seg, err := shm.Open(args[1], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	c, err := openCtl(seg)
	if err != nil {
		return err
	}
	w := &wctx{seg: seg, c: c, slot: slot, role: args[3], rng: rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))}
	return k.worker(w)
}

// ready is printed by a worker once its handles are open.
func ready() { proctest.SignalReady() }

type worker struct {
	ch   *proctest.Child
	slot int
	role string
	dead bool
	// retired: it exited saying "retired" and has been replaced.
	retired bool
}

type harness struct {
	t       *testing.T
	k       *crashKind
	name    string
	seg     *shm.Segment
	c       ctl
	rng     *rand.Rand
	ws      []*worker // live workers
	all     []*worker
	next    int
	kills   int
	killsOf map[string]int // kills by role
	// slowKills counts victims chosen while inside a call that may sleep.
	slowKills int
	trials    int
	retired   int
}

func numTrials(k *crashKind) int {
	if *trials > 0 {
		return *trials
	}
	if k.short > 0 {
		return k.short
	}
	return 4
}

func runCrash(t *testing.T, kind string) {
	k := crashKinds[kind]
	n := numTrials(k)
	slots := n*4 + len(k.workers) + 64
	h := &harness{t: t, k: k, name: proctest.TempName(t), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	size := ctlSize(slots) + 1<<20
	if k.extra != nil {
		size += k.extra(n)
	}
	seg, err := shm.Create(h.name, &shm.Options{Size: int64(size), MaxObjects: k.maxObjects})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	h.seg = seg
	mem, err := seg.Alloc(shm.Spec{Name: "ctl", Kind: shm.KindBytes, KindVersion: 1, Size: int64(ctlSize(slots))}, func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	h.c = ctl{mem}
	k.setup(h)
	for _, r := range k.workers {
		h.start(r)
	}
	start := time.Now()
	for h.trials = 0; h.trials < n; h.trials++ {
		h.reapRetired()
		if k.trial != nil {
			k.trial(h)
		} else {
			h.standardTrial()
		}
		if t.Failed() {
			break
		}
	}
	h.finish()
	if k.check != nil && !t.Failed() {
		k.check(h, true)
	}
	if v := ld(h.c.g(gViolations)); v != 0 {
		t.Errorf("%s: %d violations (see worker stderr above)", kind, v)
	}
	t.Logf("%s: %d trials, %d kills (%d aimed inside a call that may sleep), %d retired workers, %d ownerdead (%d repairs), %v",
		kind, h.trials, h.kills, h.slowKills, h.retired, ld(h.c.g(gOwnerDead)), ld(h.c.g(gRepairs)), time.Since(start).Round(time.Millisecond))
	recordCounts(kind, h)
}

// start runs a new worker in a fresh slot and waits for it to be ready.
func (h *harness) start(role string) *worker {
	h.t.Helper()
	slot := h.next
	h.next++
	st(h.c.g(gSlots), uint64(h.next))
	if gWords+(slot+1)*slotWords > len(h.c.mem)/8 {
		h.t.Fatalf("out of worker slots")
	}
	ch := proctest.StartOpts(h.t, "crash", proctest.Options{Args: []string{h.k.name, h.name, strconv.Itoa(slot), role}})
	w := &worker{ch: ch, slot: slot, role: role}
	ch.Expect(proctest.Ready, hangTimeout)
	h.ws = append(h.ws, w)
	h.all = append(h.all, w)
	return w
}

// kill SIGKILLs w, waits for it to be reaped and drops it from the live set.
func (h *harness) kill(w *worker) {
	h.t.Helper()
	w.ch.Kill()
	select {
	case <-w.ch.Done():
	case <-time.After(hangTimeout):
		h.t.Fatalf("worker %d not reaped after SIGKILL", w.slot)
	}
	w.dead = true
	h.kills++
	if h.killsOf == nil {
		h.killsOf = map[string]int{}
	}
	h.killsOf[w.role]++
	h.drop(w)
}

func (h *harness) drop(w *worker) {
	for i, x := range h.ws {
		if x == w {
			h.ws = append(h.ws[:i], h.ws[i+1:]...)
			return
		}
	}
}

// randomWorker picks a live worker at random; half of the time it prefers
// one that is inside a call that may sleep (its slow path), if any is.
func (h *harness) randomWorker(roles ...string) *worker {
	var c, blocking []*worker
	for _, w := range h.ws {
		if len(roles) == 0 || contains(roles, w.role) {
			c = append(c, w)
			if ld(h.c.s(w.slot, sBlocking)) != 0 {
				blocking = append(blocking, w)
			}
		}
	}
	if len(blocking) > 0 && h.rng.IntN(2) == 0 {
		h.slowKills++
		return blocking[h.rng.IntN(len(blocking))]
	}
	return c[h.rng.IntN(len(c))]
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// randomMoment sleeps a random time up to 20 ms; half of the time much
// less, to land in fast paths as well.
func (h *harness) randomMoment() {
	d := time.Duration(h.rng.Int64N(int64(20 * time.Millisecond)))
	if h.rng.IntN(2) == 0 {
		d /= 50
	}
	time.Sleep(d)
}

func (h *harness) standardTrial() {
	h.randomMoment()
	v := h.randomWorker()
	h.kill(v)
	if h.k.check != nil {
		h.pause()
		h.k.check(h, false)
		h.unpause()
	}
	h.start(v.role)
	h.waitProgress(h.ws)
}

// waitProgress fails the test unless every worker in ws completes an
// operation within hangTimeout.
func (h *harness) waitProgress(ws []*worker) {
	h.t.Helper()
	// A copy: callers pass h.ws, which replacing a retired worker shifts
	// in place, and each worker must be compared with its own count.
	ws = slices.Clone(ws)
	before := make([]uint64, len(ws))
	for i, w := range ws {
		before[i] = ld(h.c.s(w.slot, sProgress))
	}
	deadline := time.Now().Add(hangTimeout)
	for i, w := range ws {
		for ld(h.c.s(w.slot, sProgress)) == before[i] {
			// A worker may depend on others (a consumer on producers):
			// replace any that retired meanwhile, or the wait would
			// blame w for their absence. It also fails the test for a
			// worker, w included, that exited otherwise.
			h.reapRetired()
			if w.retired {
				goto next
			}
			if time.Now().After(deadline) {
				h.hang(w, fmt.Sprintf("made no progress for %v after trial %d", hangTimeout, h.trials))
			}
			time.Sleep(time.Millisecond)
		}
	next:
	}
}

// retiredNow reports whether w exited cleanly saying "retired" (a worker
// that used up its sequence space), replacing it.
func (h *harness) retiredNow(w *worker) bool {
	if w.retired {
		return true
	}
	r := w.ch.Wait(time.Second)
	if r.Code != 0 || !strings.Contains(r.Stdout, "retired") {
		return false
	}
	w.retired = true
	h.drop(w)
	h.retired++
	h.start(w.role)
	return true
}

func (h *harness) reapRetired() {
	for _, w := range append([]*worker(nil), h.ws...) {
		select {
		case <-w.ch.Done():
			if !h.retiredNow(w) {
				r := w.ch.Wait(time.Second)
				h.t.Fatalf("%s: worker %d (%s) exited: code %d\n%s", h.k.name, w.slot, w.role, r.Code, r.Stderr)
			}
		default:
		}
	}
}

// pause parks every live worker (those blocked in an operation finish it
// first: workers use bounded or wakeable waits) at the top of its loop and waits until they
// all have; workers blocked in an operation must finish it (with a timeout)
// first, so a pause that does not complete is a hang.
func (h *harness) pause() {
	h.t.Helper()
	ep := inc(h.c.g(gPauseEpoch))
	st(h.c.g(gPause), 1)
	deadline := time.Now().Add(hangTimeout)
	for i := 0; i < len(h.ws); i++ {
		w := h.ws[i]
		for ld(h.c.s(w.slot, sPauseAck)) != ep {
			select {
			case <-w.ch.Done():
				if h.retiredNow(w) { // replaced at the end of h.ws
					i--
					goto next
				}
				r := w.ch.Wait(time.Second)
				h.t.Fatalf("%s: worker %d (%s) exited: code %d\n%s", h.k.name, w.slot, w.role, r.Code, r.Stderr)
			default:
			}
			if time.Now().After(deadline) {
				h.hang(w, fmt.Sprintf("did not park within %v", hangTimeout))
			}
			time.Sleep(200 * time.Microsecond)
		}
	next:
	}
}

func (h *harness) hang(w *worker, what string) {
	h.t.Helper()
	// The shared state and the workers first, while w still lives.
	state := "\nworkers:"
	for _, x := range h.ws {
		state += fmt.Sprintf(" %d(%s, pid %d)", x.slot, x.role, x.ch.Pid())
	}
	if h.k.dump != nil {
		state += "\nshared state: " + h.k.dump(h)
	}
	w.ch.Signal(syscall.SIGQUIT)
	r := w.ch.Wait(5 * time.Second)
	st := r.Stderr
	if len(st) > 6000 {
		st = st[:6000]
	}
	h.t.Fatalf("%s: HANG: worker %d (%s, pid %d) %s%s; its goroutines:\n%s", h.k.name, w.slot, w.role, w.ch.Pid(), what, state, st)
}

func (h *harness) unpause() { st(h.c.g(gPause), 0) }

// finish tells every worker to stop and waits for each to exit cleanly.
func (h *harness) finish() {
	h.t.Helper()
	h.unpause()
	st(h.c.g(gStop), 1)
	if h.k.beforeFinish != nil {
		h.k.beforeFinish(h)
	}
	ws := h.ws
	if h.k.first != nil {
		var rest []*worker
		for _, w := range ws {
			if contains(h.k.first, w.role) {
				h.waitExit(w)
			} else {
				rest = append(rest, w)
			}
		}
		st(h.c.g(gFirstDone), 1)
		ws = rest
	}
	for _, w := range ws {
		h.waitExit(w)
	}
	h.ws = nil
}

func (h *harness) waitExit(w *worker) {
	h.t.Helper()
	{
		r := w.ch.Wait(hangTimeout)
		if r.TimedOut {
			h.t.Errorf("%s: HANG: worker %d (%s) did not stop within %v", h.k.name, w.slot, w.role, hangTimeout)
		} else if r.Code != 0 {
			h.t.Errorf("%s: worker %d (%s) failed: code %d\n%s", h.k.name, w.slot, w.role, r.Code, r.Stderr)
		}
	}
}

// sumSlots adds word i over every slot ever used whose role is one of roles.
func (h *harness) sumSlots(i int, roles ...string) uint64 {
	var s uint64
	for _, w := range h.all {
		if len(roles) == 0 || contains(roles, w.role) {
			s += ld(h.c.s(w.slot, i))
		}
	}
	return s
}

// counts of the long run, printed at the end for the report.
var crashCounts []string

func recordCounts(kind string, h *harness) {
	crashCounts = append(crashCounts, fmt.Sprintf("%-10s trials=%d kills=%d slowpath-kills=%d ownerdead=%d repairs=%d violations=%d failed=%v",
		kind, h.trials, h.kills, h.slowKills, ld(h.c.g(gOwnerDead)), ld(h.c.g(gRepairs)), ld(h.c.g(gViolations)), h.t.Failed()))
}
