//go:build linux

package shm

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
)

var destroyRounds = flag.Int("shm.destroyrounds", 0, "rounds of the kill-during-Create/Destroy test (0: 12, 4 with -short)")

func registerDestroyRoles() {
	proctest.Register("hold", roleHold)
	proctest.Register("die-dying", roleDieDying)
	proctest.Register("churn", roleChurn)
	proctest.Register("recreate", roleRecreate)
}

func bytesOf(name string, size int64) Spec {
	return Spec{Name: name, Kind: KindBytes, KindVersion: 1, Size: size}
}

// roleHold opens the segment at args[0] and looks up the object args[1]
// (size args[2]), holding it open; with args[3] == "release" it gives the
// hold back before it says it is ready. It then waits to be killed.
func roleHold(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	var size int64
	fmt.Sscan(args[2], &size)
	mem, err := s.Lookup(bytesOf(args[1], size))
	if err != nil {
		return err
	}
	if len(args) > 3 && args[3] == "release" {
		s.Release(mem)
	}
	proctest.SignalReady()
	time.Sleep(time.Hour)
	return nil
}

// roleDieDying opens the segment at args[0] and destroys the object
// args[1], stopping for good while the entry is marked dying, under the
// segment lock.
func roleDieDying(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	testHookDying = func() {
		proctest.SignalReady()
		time.Sleep(time.Hour)
	}
	return s.Destroy(args[1])
}

// churnSizes are the object sizes of the churn: a few classes, so that
// holes of one size are filled by another.
var churnSizes = []int64{8, 100, 700, 2000, 5000}

// churnName is the name of churn object k.
func churnName(k int) string { return fmt.Sprintf("c%d", k) }

// churnPattern fills an object as churn's initializer does: every byte
// names the object and its incarnation, so that overlapping objects show.
func churnPattern(mem []byte, tag byte) {
	for i := range mem {
		mem[i] = tag
	}
}

// roleChurn opens the segment at args[0] and, forever, creates and
// destroys churn objects of random sizes, each filled with its tag.
func roleChurn(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	proctest.SignalReady()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for n := 0; ; n++ {
		k := rng.IntN(4)
		size := churnSizes[rng.IntN(len(churnSizes))]
		tag := byte(n)
		mem, err := s.Alloc(bytesOf(churnName(k), size), func(m []byte) error {
			churnPattern(m, tag)
			return nil
		})
		switch {
		case err == nil:
			s.Release(mem)
		case errors.Is(err, ErrExist):
		default:
			return err
		}
		if err := s.Destroy(churnName(rng.IntN(4))); err != nil && !errors.Is(err, ErrNotExist) {
			return err
		}
	}
}

// TestDestroyReuse creates and destroys objects of a few sizes 100,000
// times in one small segment, with some of them live at any time: without
// reuse of freed space the segment is full after a few hundred. Every
// object keeps its own contents until destroyed (no two overlap).
func TestDestroyReuse(t *testing.T) {
	// An object area of 28 KiB after the header.
	s, _ := mustCreate(t, &Options{Size: headerSizeFor(2*16, DefaultMaxProcs) + 28<<10, MaxObjects: 16})
	const live = 8
	sizes := []int64{8, 64, 200, 1000, 4096}
	type obj struct {
		mem []byte
		tag byte
	}
	objs := make([]*obj, live)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	const cycles = 100_000
	for n := 0; n < cycles; n++ {
		k := rng.IntN(live)
		name := fmt.Sprintf("o%d", k)
		if o := objs[k]; o != nil {
			for i, c := range o.mem {
				if c != o.tag {
					t.Fatalf("cycle %d: %s byte %d is %d, want %d: objects overlap", n, name, i, c, o.tag)
				}
			}
			if n < live*4 {
				// Our own raw hold refuses Destroy until released.
				wantErr(t, s.Destroy(name), ErrInUse)
			}
			s.Release(o.mem)
			if err := s.Destroy(name); err != nil {
				t.Fatalf("cycle %d: %v", n, err)
			}
			objs[k] = nil
			continue
		}
		tag := byte(n%255 + 1)
		mem, err := s.Alloc(bytesOf(name, sizes[rng.IntN(len(sizes))]), func(m []byte) error {
			churnPattern(m, tag)
			return nil
		})
		if err != nil {
			t.Fatalf("cycle %d: %v (%d bytes used of %d)", n, err, s.Info().Used, s.Size())
		}
		objs[k] = &obj{mem, tag}
	}
	el := time.Since(start)
	t.Logf("%d create/destroy cycles in %v (%v a cycle), segment of %d bytes, %d objects live", cycles, el, el/cycles, s.Size(), live)
}

// TestDestroyThenOpen: a destroyed name is gone for Lookup and Objects,
// can be created again, and the new object is zeroed.
func TestDestroyThenOpen(t *testing.T) {
	s, path := mustCreate(t, nil)
	sp := bytesOf("x", 64)
	mem, err := s.Alloc(sp, func(m []byte) error { m[0] = 7; return nil })
	if err != nil {
		t.Fatal(err)
	}
	s.Release(mem)
	s2 := mustOpen(t, path, nil)
	m2, err := s2.Lookup(sp)
	if err != nil {
		t.Fatal(err)
	}
	// Another Segment of the same file in this process shares its slot
	// and its holds.
	wantErr(t, s.Destroy("x"), ErrInUse)
	s2.Release(m2)
	if err := s.Destroy("x"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Lookup(sp)
	wantErr(t, err, ErrNotExist)
	_, err = s2.Lookup(sp)
	wantErr(t, err, ErrNotExist)
	wantErr(t, s.Destroy("x"), ErrNotExist)
	if objs := mustObjects(t, s); len(objs) != 0 {
		t.Fatalf("objects after Destroy: %+v", objs)
	}
	mem, err = s.Alloc(sp, nil)
	if err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if mem[0] != 0 {
		t.Fatal("re-created object not zeroed")
	}
	wantErr(t, s.Destroy(""), ErrInvalidName)
	s3 := mustOpen(t, path, nil)
	s3.Close()
	wantErr(t, s3.Destroy("x"), ErrClosed)
}

// TestDestroyKeptHandle: a handle tied to the object by Keep holds it open
// until the garbage collector has collected it.
func TestDestroyKeptHandle(t *testing.T) {
	s, _ := mustCreate(t, nil)
	mem, err := s.Alloc(bytesOf("x", 8), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &struct{ mem []byte }{mem}
	Keep(s, h, mem)
	wantErr(t, s.Destroy("x"), ErrInUse)
	runtime.KeepAlive(h)
	h = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		err := s.Destroy("x")
		if err == nil {
			break
		}
		wantErr(t, err, ErrInUse)
		if time.Now().After(deadline) {
			t.Fatal("collected handle still holds the object")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDestroyForce destroys what this process holds; the name is free.
func TestDestroyForce(t *testing.T) {
	s, _ := mustCreate(t, nil)
	if _, err := s.Alloc(bytesOf("x", 8), nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Destroy("x"), ErrInUse)
	if err := s.DestroyForce("x"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Lookup(bytesOf("x", 8))
	wantErr(t, err, ErrNotExist)
	wantErr(t, s.DestroyForce("x"), ErrNotExist)
}

// TestDestroyHeldByOtherProcess: Destroy is refused while another live
// process has the object open, and allowed once it has been SIGKILLed; a
// process that gave its hold back does not block it.
func TestDestroyHeldByOtherProcess(t *testing.T) {
	s, path := mustCreate(t, nil)
	for _, name := range []string{"x", "y"} {
		mem, err := s.Alloc(bytesOf(name, 64), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
	}
	c := proctest.Start(t, "hold", path, "x", "64")
	c.Expect(proctest.Ready, 0)
	r := proctest.Start(t, "hold", path, "y", "64", "release")
	r.Expect(proctest.Ready, 0)

	err := s.Destroy("x")
	wantErr(t, err, ErrInUse)
	if !strings.Contains(err.Error(), fmt.Sprint(c.Pid())) {
		t.Fatalf("refusal does not name the holder, pid %d: %v", c.Pid(), err)
	}
	// The refused Destroy left the object usable.
	s.Release(mustLookup(t, s, "x"))
	// y's holder released it and is alive.
	if err := s.Destroy("y"); err != nil {
		t.Fatalf("Destroy of an object nobody holds: %v", err)
	}

	killAndReap(t, c)
	if err := s.Destroy("x"); err != nil {
		t.Fatalf("Destroy after the holder was killed: %v", err)
	}
	_, err = s.Lookup(bytesOf("x", 64))
	wantErr(t, err, ErrNotExist)

	// A new process in the dead holder's slot starts with no holds.
	killAndReap(t, r)
	mem, err := s.Alloc(bytesOf("z", 64), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Release(mem)
	c2 := proctest.Start(t, "hold", path, "z", "64", "release")
	c2.Expect(proctest.Ready, 0)
	if err := s.Destroy("z"); err != nil {
		t.Fatalf("Destroy with a fresh process attached: %v", err)
	}
}

func mustLookup(t *testing.T, s *Segment, name string) []byte {
	t.Helper()
	m, err := s.Lookup(bytesOf(name, 0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDestroyerKilledWhileDying: a process killed in Destroy with the
// entry marked dying under the segment lock leaves the object, ready, to
// the next process that looks it up or takes the lock.
func TestDestroyerKilledWhileDying(t *testing.T) {
	for _, next := range []string{"lookup", "alloc", "destroy"} {
		t.Run(next, func(t *testing.T) {
			s, path := mustCreate(t, nil)
			mem, err := s.Alloc(bytesOf("x", 64), func(m []byte) error { m[0] = 9; return nil })
			if err != nil {
				t.Fatal(err)
			}
			s.Release(mem)
			c := proctest.Start(t, "die-dying", path, "x")
			c.Expect(proctest.Ready, 0)
			i, st := s.find("x")
			if st != stateDying {
				t.Fatalf("entry %d state %d while the destroyer stops inside, want dying", i, st)
			}
			killAndReap(t, c)
			switch next {
			case "lookup":
				m := mustLookup(t, s, "x")
				if m[0] != 9 {
					t.Fatal("object lost its contents")
				}
				s.Release(m)
			case "alloc":
				// The lock's next holder repairs: x is ready again, so
				// its name is taken.
				_, err := s.Alloc(bytesOf("x", 64), nil)
				wantErr(t, err, ErrExist)
			case "destroy":
			}
			if err := s.Destroy("x"); err != nil {
				t.Fatal(err)
			}
			if _, st := s.find("x"); st != 0 {
				t.Fatal("x still listed")
			}
		})
	}
}

// TestKilledDuringCreateOrDestroy kills a process that creates and
// destroys objects without pause, at random moments found by stopping it
// (SIGSTOP) and reading the shared words: inside the segment lock with an
// entry marked dying (mid-Destroy), inside the lock otherwise (mid-Create),
// or with an entry of its own initializing (Create outside the lock).
// After each kill the segment must be consistent: no object overlaps
// another, every object ready holds its own pattern, and once every
// object is destroyed the whole object area is one free gap: no crash
// leaks space.
func TestKilledDuringCreateOrDestroy(t *testing.T) {
	rounds := *destroyRounds
	if rounds == 0 {
		rounds = 12
		if testing.Short() {
			rounds = 4
		}
	}
	s, path := mustCreate(t, &Options{Size: 64 << 10, MaxObjects: 8})
	rng := rand.New(rand.NewPCG(3, 4))
	var hits struct{ dying, locked, initializing, elsewhere int }
	for round := 0; round < rounds; round++ {
		c := proctest.Start(t, "churn", path)
		c.Expect(proctest.Ready, 0)
		pid := c.Pid()
		// Stop and resume it until it is caught inside an update (in
		// even rounds, inside Destroy's dying window only), or a number
		// of tries.
		const tries = 1000
		var where string
		for try := 0; try < tries; try++ {
			time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			proctest.WaitStopped(t, pid)
			where = s.whereIs(c.Pid())
			if where == "dying" || (where != "" && round%2 == 1) {
				break
			}
			if try < tries-1 {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		switch where {
		case "dying":
			hits.dying++
		case "locked":
			hits.locked++
		case "initializing":
			hits.initializing++
		default:
			hits.elsewhere++
		}
		killAndReap(t, c)
		checkAfterKill(t, s, round)
	}
	t.Logf("%d kills: %d mid-Destroy (entry dying), %d mid-Create under the lock, %d mid-Create initializing, %d elsewhere",
		rounds, hits.dying, hits.locked, hits.initializing, hits.elsewhere)
	if hits.dying == 0 || hits.locked+hits.initializing == 0 {
		t.Fatal("no kill inside Destroy, or none inside Create: the test proved too little")
	}
	// Everything freed: the whole object area is one gap.
	for k := 0; k < 4; k++ {
		if err := s.DestroyForce(churnName(k)); err != nil && !errors.Is(err, ErrNotExist) {
			t.Fatal(err)
		}
	}
	all := s.Size() - s.Info().HeaderSize
	mem, err := s.Alloc(bytesOf("all", all), nil)
	if err != nil {
		t.Fatalf("the whole object area after %d kills: %v", rounds, err)
	}
	s.Release(mem)
}

// whereIs says where the stopped process pid is, from the shared words:
// "dying" if it holds the segment lock with an entry marked dying,
// "locked" if it holds the lock otherwise, "initializing" if an entry it
// is creating is initializing, else "".
func (s *Segment) whereIs(pid int) string {
	holder := s.lock.Load().Holder
	if holder.Slot != 0 && s.reg.Pid(holder) == pid {
		for i := 0; i < s.hdr.capacity; i++ {
			if loadState(entry(s.mem, i)) == stateDying {
				return "dying"
			}
		}
		return "locked"
	}
	for i := 0; i < s.hdr.capacity; i++ {
		e := entry(s.mem, i)
		if loadState(e) == stateInit && int(atomic.LoadUint32(u32(e, eCreatorPid))) == pid {
			return "initializing"
		}
	}
	return ""
}

// checkAfterKill checks the segment after a churn process was killed: the
// next Alloc repairs (taking the lock over if the process died in it), the
// directory lists without error, nothing is left dying or initializing by
// the dead, ready objects do not overlap and hold their pattern.
func checkAfterKill(t *testing.T, s *Segment, round int) {
	t.Helper()
	mem, err := s.Alloc(bytesOf("probe", 8), nil)
	if err != nil {
		t.Fatalf("round %d: Alloc after the kill: %v", round, err)
	}
	s.Release(mem)
	if err := s.Destroy("probe"); err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	if st := s.lock.Load(); st.Held || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("round %d: segment lock %+v", round, st)
	}
	objs, err := s.Objects()
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	for i := 0; i < s.hdr.capacity; i++ {
		if st := loadState(entry(s.mem, i)); st == stateDying {
			t.Fatalf("round %d: entry %d left dying", round, i)
		}
	}
	for _, o := range objs {
		if !o.Ready {
			t.Fatalf("round %d: %s left initializing by the dead", round, o.Name)
		}
	}
	// Objects lists in directory order; check overlap pairwise.
	for a := range objs {
		for b := range objs {
			if a != b && objs[a].Offset < objs[b].Offset+objs[b].Size && objs[b].Offset < objs[a].Offset+objs[a].Size {
				t.Fatalf("round %d: %s and %s overlap", round, objs[a].Name, objs[b].Name)
			}
		}
		m := s.mem[objs[a].Offset : objs[a].Offset+objs[a].Size]
		for _, c := range m {
			if c != m[0] {
				t.Fatalf("round %d: %s does not hold one tag: another object wrote it", round, objs[a].Name)
			}
		}
	}
}

// TestDestroyCorrupt: hostile directory and attach words give errors.
func TestDestroyCorrupt(t *testing.T) {
	t.Run("bad state", func(t *testing.T) {
		s, path := mustCreate(t, nil)
		mem, err := s.Alloc(bytesOf("x", 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
		patch(t, path, entryOfName(t, s, "x")+eState, []byte{stateDying + 5})
		// find skips nothing in use, so the name is found in a bad state.
		wantErr(t, s.Destroy("x"), ErrCorrupt)
	})
	t.Run("attach bits of nobody", func(t *testing.T) {
		// Every bit of the row set, this process's own included: bits of
		// slots nobody holds and beyond the registry are not holders, and
		// this process counts its own holds itself.
		s, path := mustCreate(t, &Options{MaxProcs: 100})
		mem, err := s.Alloc(bytesOf("x", 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
		ones := make([]byte, attachWords(100)*8)
		for i := range ones {
			ones[i] = 0xff
		}
		patch(t, path, s.hdr.attachOffset(), ones)
		if err := s.Destroy("x"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("dying outside a Destroy", func(t *testing.T) {
		// A dying entry while nobody holds the segment lock was written
		// by a corrupting peer: Lookup waits for the lock once, then
		// fails instead of waiting again and again.
		s, path := mustCreate(t, nil)
		mem, err := s.Alloc(bytesOf("x", 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
		patch(t, path, entryOfName(t, s, "x")+eState, []byte{stateDying})
		_, err = s.Lookup(bytesOf("x", 8))
		wantErr(t, err, ErrCorrupt)
		wantErr(t, s.Destroy("x"), ErrCorrupt)
	})
}

// TestDestroyAfterHolderSlotReused: a holder SIGKILLed leaves its bit; the
// next process to claim its registry slot (the only one free) is alive
// but holds nothing, and must not block Destroy.
func TestDestroyAfterHolderSlotReused(t *testing.T) {
	s, path := mustCreate(t, &Options{MaxProcs: 2})
	for _, name := range []string{"x", "y"} {
		mem, err := s.Alloc(bytesOf(name, 64), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
	}
	c := proctest.Start(t, "hold", path, "x", "64")
	c.Expect(proctest.Ready, 0)
	wantErr(t, s.Destroy("x"), ErrInUse)
	killAndReap(t, c)
	next := proctest.Start(t, "hold", path, "y", "64")
	next.Expect(proctest.Ready, 0)
	if p := s.Processes(); len(p) != 2 || !p[0].Alive || !p[1].Alive {
		t.Fatalf("registry %+v: want both slots held", p)
	}
	if err := s.Destroy("x"); err != nil {
		t.Fatalf("Destroy with the dead holder's slot claimed by a process that holds nothing: %v", err)
	}
	wantErr(t, s.Destroy("y"), ErrInUse)
}

// roleRecreate opens the segment at args[0] and, until killed, destroys
// the object "d" and creates it again with a new tag in each of its
// words, counting the destroys that succeeded in the object "count".
func roleRecreate(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	cm, err := s.Lookup(bytesOf("count", 8))
	if err != nil {
		return err
	}
	count := (*uint64)(unsafe.Pointer(&cm[0]))
	proctest.SignalReady()
	for tag := uint64(1); ; tag++ {
		switch err := s.Destroy("d"); {
		case err == nil:
			atomic.AddUint64(count, 1)
		case errors.Is(err, ErrInUse), errors.Is(err, ErrNotExist):
		default:
			return err
		}
		mem, err := s.Alloc(bytesOf("d", 64), func(m []byte) error {
			for i := 0; i < len(m); i += 8 {
				*(*uint64)(unsafe.Pointer(&m[i])) = tag
			}
			return nil
		})
		switch {
		case err == nil:
			s.Release(mem)
		case errors.Is(err, ErrExist):
		default:
			return err
		}
	}
}

// TestLookupRacesDestroy: while another process destroys and re-creates
// an object as fast as it can, every Lookup that returns gives an object
// that nobody destroys until it is released: its words keep their tag.
// This is the handshake of Lookup's bit and Destroy's dying state across
// processes.
func TestLookupRacesDestroy(t *testing.T) {
	s, path := mustCreate(t, &Options{Size: 64 << 10})
	cm, err := s.Alloc(bytesOf("count", 8), nil)
	if err != nil {
		t.Fatal(err)
	}
	destroys := (*uint64)(unsafe.Pointer(&cm[0]))
	c := proctest.Start(t, "recreate", path)
	c.Expect(proctest.Ready, 0)
	d := 2 * time.Second
	if testing.Short() {
		d = 300 * time.Millisecond
	}
	holds := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		mem, err := s.Lookup(bytesOf("d", 64))
		if errors.Is(err, ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), 8)
		tag := atomic.LoadUint64(&words[0])
		for spin := 0; spin < 200; spin++ {
			for i := range words {
				if w := atomic.LoadUint64(&words[i]); w != tag {
					t.Fatalf("held object changed under the hold: word %d is %d, was %d (destroyed while open)", i, w, tag)
				}
			}
		}
		s.Release(mem)
		holds++
	}
	n := atomic.LoadUint64(destroys)
	killAndReap(t, c)
	t.Logf("%d holds checked, %d destroys by the other process", holds, n)
	if holds < 10 || n < 10 {
		t.Fatalf("%d holds, %d destroys: too few to tell", holds, n)
	}
}

// TestDestroyInitializing: an object still being created by a live process
// is not destroyed (ErrNotReady); once its creator is dead, Destroy frees
// the entry and its space.
func TestDestroyInitializing(t *testing.T) {
	s, path := mustCreate(t, nil)
	c := proctest.Start(t, "die-init", path)
	c.Expect(proctest.Ready, 0)
	wantErr(t, s.Destroy("x"), ErrNotReady)
	killAndReap(t, c)
	if err := s.Destroy("x"); err != nil {
		t.Fatalf("Destroy of an entry its dead creator left initializing: %v", err)
	}
	if objs := mustObjects(t, s); len(objs) != 0 {
		t.Fatalf("objects %+v, want none", objs)
	}
	if got := s.Info().Used; got != s.Info().HeaderSize {
		t.Fatalf("%d bytes used, want only the header's %d", got, s.Info().HeaderSize)
	}
}

// TestLookupProbesPastDestroyed: the directory is a hash table, and an
// object whose entry lies past a destroyed one on its probe sequence is
// still found (a destroyed entry that became "never used" would end the
// probe there and hide it).
func TestLookupProbesPastDestroyed(t *testing.T) {
	s, _ := mustCreate(t, nil)
	// Two names with the same home entry.
	a, b := "a0", ""
	for i := 1; b == ""; i++ {
		if n := "a" + strconv.Itoa(i); home(n, s.hdr.capacity) == home(a, s.hdr.capacity) {
			b = n
		}
	}
	for _, n := range []string{a, b} {
		mem, err := s.Alloc(bytesOf(n, 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
	}
	ia, _ := s.find(a)
	ib, _ := s.find(b)
	if ia != home(a, s.hdr.capacity) || ib != (ia+1)%s.hdr.capacity {
		t.Fatalf("entries %d and %d, want %d and the next", ia, ib, home(a, s.hdr.capacity))
	}
	if err := s.Destroy(a); err != nil {
		t.Fatal(err)
	}
	mem, err := s.Lookup(bytesOf(b, 8))
	if err != nil {
		t.Fatalf("Lookup of %s past destroyed %s: %v", b, a, err)
	}
	s.Release(mem)
	_, err = s.Lookup(bytesOf(a, 8))
	wantErr(t, err, ErrNotExist)
	// A re-created a takes the destroyed entry back, ahead of b.
	if mem, err = s.Alloc(bytesOf(a, 8), nil); err != nil {
		t.Fatal(err)
	}
	s.Release(mem)
	if i, _ := s.find(a); i != ia {
		t.Fatalf("re-created %s at entry %d, want %d", a, i, ia)
	}
}

// TestLookupBoundedOnHostileDirectory: a directory with no entry that was
// never used (every one gone, as after long churn or by a hostile peer)
// still answers a lookup, after at most one pass.
func TestLookupBoundedOnHostileDirectory(t *testing.T) {
	s, path := mustCreate(t, &Options{MaxObjects: 16})
	for i := 0; i < s.hdr.capacity; i++ {
		patch(t, path, entryOff(i)+eState, []byte{stateGone})
	}
	_, err := s.Lookup(bytesOf("nothing", 8))
	wantErr(t, err, ErrNotExist)
	mem, err := s.Alloc(bytesOf("x", 8), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Release(mem)
	if mem, err = s.Lookup(bytesOf("x", 8)); err != nil {
		t.Fatal(err)
	}
	s.Release(mem)
}

// TestDestroyedEntriesEndProbes: after every object of a churned directory
// is destroyed, its entries are never-used again, so a lookup of a missing
// name stops at once instead of walking every entry free again.
func TestDestroyedEntriesEndProbes(t *testing.T) {
	s, _ := mustCreate(t, &Options{MaxObjects: 16})
	for round := range 4 {
		for i := range 16 {
			mem, err := s.Alloc(bytesOf(fmt.Sprintf("o%d-%d", round, i), 8), nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Release(mem)
		}
		for i := range 16 {
			if err := s.Destroy(fmt.Sprintf("o%d-%d", round, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < s.hdr.capacity; i++ {
		if st := loadState(entry(s.mem, i)); st != stateFree {
			t.Fatalf("entry %d of an empty directory after churn: state %d, want %d (never used)", i, st, stateFree)
		}
	}
	// Live entries keep their probe runs: objects made after partial
	// destruction are all found.
	for i := range 16 {
		mem, err := s.Alloc(bytesOf(fmt.Sprintf("k%d", i), 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Release(mem)
	}
	for i := 0; i < 16; i += 2 {
		if err := s.Destroy(fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 16; i += 2 {
		mem, err := s.Lookup(bytesOf(fmt.Sprintf("k%d", i), 8))
		if err != nil {
			t.Fatalf("k%d after its neighbours were destroyed: %v", i, err)
		}
		s.Release(mem)
	}
}
