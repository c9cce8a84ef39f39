//go:build linux

package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

const testSlots = 8

func TestMain(m *testing.M) {
	proctest.Register("attach", roleAttach)
	proctest.Register("attach-fd", roleAttachFd)
	proctest.Main(m)
}

// tableFile makes a file holding a registry table of testSlots slots at
// offset 0 and returns its path.
func tableFile(tb testing.TB) string {
	tb.Helper()
	path := "/dev/shm/" + proctest.TempName(tb)
	if err := os.WriteFile(path, make([]byte, testSlots*SlotSize), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func attachPath(tb testing.TB, path string) *Registry {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := Attach(f, path, 0, testSlots)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// roleAttach attaches to the registry at args[0], prints its identity and
// waits to be killed.
func roleAttach(args []string) error {
	f, err := os.OpenFile(args[0], os.O_RDWR, 0)
	if err != nil {
		return err
	}
	r, err := Attach(f, args[0], 0, testSlots)
	if err != nil {
		fmt.Println("error", err)
		return nil
	}
	fmt.Println("id", r.Self().Slot, r.Self().Gen)
	time.Sleep(time.Hour)
	return nil
}

// roleAttachFd attaches through an inherited descriptor (fd 3), as a child
// handed a memfd does, with no path.
func roleAttachFd(args []string) error {
	r, err := Attach(proctest.ChildFile(0), "", 0, testSlots)
	if err != nil {
		return err
	}
	fmt.Println("id", r.Self().Slot, r.Self().Gen, r.IsBlind())
	time.Sleep(time.Hour)
	return nil
}

func childID(t *testing.T, c *proctest.Child) ID {
	t.Helper()
	f := strings.Fields(c.Line(0))
	if len(f) < 3 || f[0] != "id" {
		t.Fatalf("child said %q", f)
	}
	s, _ := strconv.Atoi(f[1])
	g, _ := strconv.Atoi(f[2])
	return ID{Slot: uint32(s), Gen: uint32(g)}
}

func TestAttachSharesOneSlotPerProcess(t *testing.T) {
	path := tableFile(t)
	r := attachPath(t, path)
	r2 := attachPath(t, path)
	if r != r2 {
		t.Fatal("two handles on one file in one process claimed two slots")
	}
	if r.Self().Slot < 1 || r.Self().Gen == 0 || !r.Alive(r.Self()) || r.IsBlind() {
		t.Fatalf("self %+v", r.Self())
	}
	if r.Pid(r.Self()) != os.Getpid() {
		t.Fatalf("Pid(self) = %d", r.Pid(r.Self()))
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	// Still attached through r2.
	if got := r.Inspect(); len(got) != 1 || !got[0].Alive || got[0].Pid != os.Getpid() {
		t.Fatalf("Inspect after one release: %+v", got)
	}
	if err := r2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Release(); err != nil {
		t.Fatal("third Release:", err)
	}
	// A later Attach takes the slot again with a new generation.
	r3 := attachPath(t, path)
	defer r3.Release()
	if r3.Self().Slot != r.Self().Slot || r3.Self().Gen == r.Self().Gen {
		t.Fatalf("re-attach %+v after %+v", r3.Self(), r.Self())
	}
	if r3.Alive(r.Self()) {
		t.Fatal("the released identity is alive")
	}
}

// The core claim: another process is alive while it holds its slot —
// stopped or not — and dead once killed, whatever its pid; and a new
// process in the same slot is told apart by its generation.
func TestAliveAcrossProcesses(t *testing.T) {
	path := tableFile(t)
	r := attachPath(t, path)
	defer r.Release()

	c := proctest.Start(t, "attach", path)
	id := childID(t, c)
	if id.Slot == r.Self().Slot {
		t.Fatalf("child took the parent's slot %d", id.Slot)
	}
	if !r.Alive(id) {
		t.Fatal("live child reported dead")
	}
	if r.Pid(id) != c.Pid() {
		t.Fatalf("Pid = %d, want %d", r.Pid(id), c.Pid())
	}
	c.Signal(syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond)
	if !r.Alive(id) {
		t.Fatal("stopped child reported dead")
	}
	c.Signal(syscall.SIGCONT)
	c.Kill()
	<-c.Done()
	if r.Alive(id) {
		t.Fatal("killed child reported alive")
	}
	slots := r.Inspect()
	found := false
	for _, s := range slots {
		if uint32(s.Slot) == id.Slot {
			found = true
			if s.Alive || s.Pid != c.Pid() {
				t.Fatalf("dead child's slot %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("dead child's slot not listed: %+v", slots)
	}

	// The next process takes the dead one's slot (the only slot left with
	// a pid on it is preferred last, so fill the clean ones first).
	var kids []*proctest.Child
	var reuse ID
	for range testSlots - 1 {
		k := proctest.Start(t, "attach", path)
		kids = append(kids, k)
		if nid := childID(t, k); nid.Slot == id.Slot {
			reuse = nid
		}
	}
	if reuse.Slot == 0 {
		t.Fatal("no new process took the dead process's slot")
	}
	if reuse.Gen == id.Gen || r.Alive(id) || !r.Alive(reuse) {
		t.Fatalf("old %+v alive=%v, new %+v alive=%v", id, r.Alive(id), reuse, r.Alive(reuse))
	}
	// Every slot is now held by a live process: one more is ErrFull.
	extra := proctest.Start(t, "attach", path)
	if line := extra.Line(0); !strings.Contains(line, "registry full") {
		t.Fatalf("attach to a full registry: %q", line)
	}
	for _, k := range kids {
		k.Kill()
	}
}

// A descriptor inherited from the parent shares the parent's open file
// description and so its locks: the child must not lock through it, or it
// would take the parent's slot (and keep it alive after the parent dies).
func TestInheritedDescriptorGetsItsOwnSlot(t *testing.T) {
	path := tableFile(t)
	r := attachPath(t, path)
	defer r.Release()
	// Hand the child the registry's own description: the worst case.
	f := os.NewFile(uintptr(r.fd), "registry")
	c := proctest.StartOpts(t, "attach-fd", proctest.Options{Files: []*os.File{f}})
	line := c.Line(0)
	var slot, gen uint32
	var blind bool
	if _, err := fmt.Sscanf(line, "id %d %d %t", &slot, &gen, &blind); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	if blind {
		t.Skip("no /proc/self/fd here: the child is blind (documented)")
	}
	if slot == r.Self().Slot {
		t.Fatal("child claimed its parent's slot through an inherited descriptor")
	}
	if !r.Alive(ID{Slot: slot, Gen: gen}) {
		t.Fatal("child not alive")
	}
	c.Kill()
	<-c.Done()
	if r.Alive(ID{Slot: slot, Gen: gen}) {
		t.Fatal("killed child alive")
	}
}

func TestGarbageAndBlindIDs(t *testing.T) {
	path := tableFile(t)
	r := attachPath(t, path)
	defer r.Release()
	for _, id := range []ID{{}, {Slot: testSlots + 1, Gen: 1}, {Slot: 3, Gen: 99}} {
		if r.Alive(id) {
			t.Errorf("%+v alive", id)
		}
	}
	b := Blind()
	if !b.Self().Blind() || !b.IsBlind() || Blind() != b {
		t.Fatalf("blind registry %+v", b.Self())
	}
	// What cannot be proven dead is alive to the blind registry; a blind
	// identity is outside every real registry, so dead to it.
	if r.Alive(b.Self()) || !b.Alive(ID{Slot: 3, Gen: 99}) || b.Alive(ID{}) {
		t.Fatal("blind liveness")
	}
	if Unpack(b.Self().Pack()) != b.Self() || Unpack(r.Self().Pack()) != r.Self() {
		t.Fatal("Pack/Unpack round trip")
	}
	if !r.AliveBits(ID{Slot: r.Self().Slot, Gen: r.Self().Gen & 0xff}, 0xff) {
		t.Fatal("AliveBits(self)")
	}
	if r.AliveBits(ID{Slot: 3, Gen: 1}, 0xff) {
		t.Fatal("AliveBits of a never-claimed slot")
	}
}

// The liveness check is one atomic load and one fcntl, with no allocation.
func BenchmarkAliveOther(b *testing.B) {
	path := tableFile(b)
	r := attachPath(b, path)
	defer r.Release()
	c := proctest.Start(b, "attach", path)
	f := strings.Fields(c.Line(0))
	s, _ := strconv.Atoi(f[1])
	g, _ := strconv.Atoi(f[2])
	id := ID{Slot: uint32(s), Gen: uint32(g)}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Alive(id) {
			b.Fatal("dead")
		}
	}
	c.Kill()
}

func BenchmarkAliveSelf(b *testing.B) {
	path := tableFile(b)
	r := attachPath(b, path)
	defer r.Release()
	b.ReportAllocs()
	for b.Loop() {
		if !r.Alive(r.Self()) {
			b.Fatal("dead")
		}
	}
}
