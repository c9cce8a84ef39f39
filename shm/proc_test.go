//go:build linux

package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
)

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func registerRoles() {
	proctest.Register("race", roleRace)
	proctest.Register("anon", roleAnon)
	proctest.Register("die-locked", roleDieLocked)
	proctest.Register("die-init", roleDieInit)
	proctest.Register("unsealed", roleUnsealed)
	registerDestroyRoles()
}

var raceSpec = Spec{Name: "obj", Kind: KindBytes, KindVersion: 1, Size: 8}

// roleRace waits for a go file, then races to create (or open) the segment
// and to allocate one object, and reports what it got.
// Args: segment name, "create" or "open-or-create", go file.
func roleRace(args []string) error {
	name, mode, gofile := args[0], args[1], args[2]
	opts := &Options{Size: 1 << 16, ReadyTimeout: 10 * time.Second}
	proctest.SignalReady()
	for {
		if _, err := os.Stat(gofile); err == nil {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	var s *Segment
	var err error
	switch mode {
	case "create":
		s, err = Create(name, opts)
		if errors.Is(err, ErrExist) {
			fmt.Println("seg exist")
			// The winner may not have published its header yet.
			deadline := time.Now().Add(10 * time.Second)
			for {
				s, err = Open(name, opts)
				if !errors.Is(err, ErrNotSegment) || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
		} else if err == nil {
			fmt.Println("seg created")
		}
	case "open-or-create":
		s, err = OpenOrCreate(name, opts)
		if err == nil {
			if s.Info().CreatorPid == os.Getpid() {
				fmt.Println("seg created")
			} else {
				fmt.Println("seg opened")
			}
		}
	}
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("creator", s.Info().CreatorPid)
	_, err = s.Alloc(raceSpec, func(mem []byte) error {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[0])), uint64(os.Getpid()))
		return nil
	})
	switch {
	case err == nil:
		fmt.Println("obj won")
	case errors.Is(err, ErrExist):
		fmt.Println("obj exist")
	default:
		return err
	}
	mem, err := s.Lookup(raceSpec)
	if err != nil {
		return err
	}
	fmt.Println("obj", atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[0]))))
	return nil
}

func TestRaceCreateAndAlloc(t *testing.T) {
	n, rounds := 8, 3
	if testing.Short() {
		n, rounds = 4, 1
	}
	for r := 0; r < rounds; r++ {
		name := proctest.TempName(t)
		gofile := filepath.Join(DefaultDir, name+".go")
		t.Cleanup(func() { os.Remove(gofile) })
		cs := make([]*proctest.Child, n)
		for i := range cs {
			mode := "create"
			if i%2 == 1 {
				mode = "open-or-create"
			}
			cs[i] = proctest.Start(t, "race", name, mode, gofile)
		}
		for _, c := range cs {
			c.Expect(proctest.Ready, 0)
		}
		if err := os.WriteFile(gofile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		segWinner, objWinner := 0, 0
		creators, objs := map[string]bool{}, map[string]bool{}
		outs := proctest.WaitAll(cs)
		t.Logf("round %d: %q", r, outs)
		for i, out := range outs {
			pid := strconv.Itoa(cs[i].Pid())
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				switch {
				case line == "seg created":
					segWinner++
					creators[pid] = true
				case line == "obj won":
					objWinner++
					objs[pid] = true
				case f[0] == "creator":
					creators[f[1]] = true
				case f[0] == "obj" && f[1] != "exist":
					objs[f[1]] = true
				case line == proctest.Ready || line == "seg exist" || line == "seg opened" || line == "obj exist":
				default:
					t.Fatalf("child %d: unexpected line %q", i, line)
				}
			}
		}
		// Exactly one creator of each, and everybody saw that one.
		if segWinner != 1 || len(creators) != 1 {
			t.Fatalf("round %d: %d segment creators; creators seen %v", r, segWinner, creators)
		}
		if objWinner != 1 || len(objs) != 1 {
			t.Fatalf("round %d: %d object winners; objects seen %v", r, objWinner, objs)
		}
		if _, err := Inspect(filepath.Join(DefaultDir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

var counterSpec = Spec{Name: "counter", Kind: KindBytes, KindVersion: 1, Size: 8}

// roleAnon attaches to the anonymous segment passed as fd 3, reports the
// counter and increments it, and allocates an object of its own.
func roleAnon([]string) error {
	f := proctest.ChildFile(0)
	s, err := OpenFile(f)
	if err != nil {
		return err
	}
	f.Close()
	defer s.Close()
	mem, err := s.Lookup(counterSpec)
	if err != nil {
		return err
	}
	p := (*uint64)(unsafe.Pointer(&mem[0]))
	fmt.Println("saw", atomic.LoadUint64(p))
	atomic.AddUint64(p, 1)
	_, err = s.Alloc(Spec{Name: "from-child", Kind: KindBytes, Size: 8}, func(m []byte) error {
		m[0] = 9
		return nil
	})
	return err
}

func TestAnonymousInheritedByChild(t *testing.T) {
	s, err := CreateAnonymous(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mem, err := s.Alloc(counterSpec, func(m []byte) error {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&m[0])), 41)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.StartOpts(t, "anon", proctest.Options{Files: []*os.File{s.File()}})
	if out := c.WaitOK(); out != "saw 41\n" {
		t.Fatalf("child printed %q", out)
	}
	if v := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[0]))); v != 42 {
		t.Fatalf("counter %d after the child's increment, want 42", v)
	}
	m, err := s.Lookup(Spec{Name: "from-child", Kind: KindBytes, Size: 8})
	if err != nil || m[0] != 9 {
		t.Fatalf("child's object: %v", err)
	}
}

// roleDieLocked opens the segment at args[0] and blocks inside Alloc of
// "x" while holding the segment lock, to be killed there.
func roleDieLocked(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	testHookLocked = func() {
		proctest.SignalReady()
		time.Sleep(time.Hour)
	}
	_, err = s.Alloc(Spec{Name: "x", Kind: KindBytes, Size: 8}, nil)
	return err
}

// roleDieInit opens the segment at args[0] and blocks in the initializer
// of "x", to be killed there.
func roleDieInit(args []string) error {
	s, err := Open(args[0], nil)
	if err != nil {
		return err
	}
	_, err = s.Alloc(Spec{Name: "x", Kind: KindBytes, Size: 8}, func([]byte) error {
		proctest.SignalReady()
		time.Sleep(time.Hour)
		return nil
	})
	return err
}

func killAndReap(t *testing.T, c *proctest.Child) {
	t.Helper()
	c.Kill()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("killed child not reaped")
	}
}

func TestAllocerKilledHoldingSegmentLock(t *testing.T) {
	s, path := mustCreate(t, nil)
	c := proctest.Start(t, "die-locked", path)
	c.Expect(proctest.Ready, 0)
	if st := s.lock.Load(); !st.Held || s.reg.Pid(st.Holder) != c.Pid() {
		t.Fatalf("segment lock %+v, want held by the child %d", st, c.Pid())
	}
	if objs := mustObjects(t, s); len(objs) != 1 || objs[0].Ready || objs[0].Creator != c.Pid() {
		t.Fatalf("objects %+v, want x initializing by the child", objs)
	}
	killAndReap(t, c)

	t0 := time.Now()
	if _, err := s.Alloc(Spec{Name: "y", Kind: KindBytes, Size: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Alloc took %v to take over the dead holder's lock", d)
	}
	// Repair freed the dead child's entry, and left the lock consistent.
	objs := mustObjects(t, s)
	if len(objs) != 1 || objs[0].Name != "y" || !objs[0].Ready {
		t.Fatalf("objects after repair %+v, want only y", objs)
	}
	if st := s.lock.Load(); st.Held || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("segment lock after repair: %+v", st)
	}
	if _, err := s.Alloc(Spec{Name: "x", Kind: KindBytes, Size: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if objs := mustObjects(t, s); len(objs) != 2 || objs[0].Name == objs[1].Name ||
		objs[0].Offset < objs[1].Offset+objs[1].Size && objs[1].Offset < objs[0].Offset+objs[0].Size {
		t.Fatalf("objects %+v, want x and y apart", objs)
	}
}

func TestCreatorKilledDuringInit(t *testing.T) {
	s, path := mustCreate(t, nil)
	c := proctest.Start(t, "die-init", path)
	c.Expect(proctest.Ready, 0)
	spec := Spec{Name: "x", Kind: KindBytes, Size: 8}
	s2 := mustOpen(t, path, &Options{ReadyTimeout: 200 * time.Millisecond})
	_, err := s2.Lookup(spec)
	wantErr(t, err, ErrNotReady)
	if strings.Contains(err.Error(), "died") {
		t.Fatalf("live creator reported dead: %v", err)
	}
	_, err = s.Alloc(spec, nil)
	wantErr(t, err, ErrExist)

	killAndReap(t, c)
	_, err = s2.Lookup(spec)
	wantErr(t, err, ErrNotReady)
	if !strings.Contains(err.Error(), "has died") {
		t.Fatalf("dead creator not reported: %v", err)
	}
	// The next creator of the name reclaims the entry.
	if _, err := s.Alloc(spec, func(m []byte) error { m[0] = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	m, err := s2.Lookup(spec)
	if err != nil || m[0] != 1 {
		t.Fatalf("Lookup after reclaim: %v", err)
	}
	if objs := mustObjects(t, s); len(objs) != 1 {
		t.Fatalf("objects %+v, want one x", objs)
	}
}
