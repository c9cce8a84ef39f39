package proc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	s := Self()
	if int(s.Pid) != os.Getpid() || s.Tag == 0 {
		t.Fatalf("Self() = %+v, pid %d", s, os.Getpid())
	}
	if Unpack(s.Pack()) != s || SelfPacked() != s.Pack() {
		t.Fatal("Pack/Unpack round trip")
	}
	if tag, err := startTag(os.Getpid()); err != nil || tag != s.Tag {
		t.Fatalf("startTag = %d, %v; cached %d", tag, err, s.Tag)
	}
}

func TestAlive(t *testing.T) {
	if !Alive(Self()) {
		t.Fatal("self not alive")
	}
	parent := ID{Pid: uint32(os.Getppid())}
	parent.Tag, _ = startTag(os.Getppid())
	if !Alive(parent) {
		t.Fatal("parent not alive")
	}
	// Same pid, another start time: a reused pid, so the recorded process is dead.
	if Alive(ID{Pid: parent.Pid, Tag: parent.Tag + 1}) {
		t.Fatal("a pid with another start tag counted as alive")
	}
	for _, id := range []ID{{}, {Pid: MaxPid + 1, Tag: 1}} {
		if Alive(id) {
			t.Fatalf("%+v alive", id)
		}
	}
}

func TestZombieAndReapedAreDead(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	id := ID{Pid: uint32(cmd.Process.Pid)}
	id.Tag, _ = startTag(cmd.Process.Pid)
	if !Alive(id) {
		t.Fatal("running child not alive")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Until reaped the child is a zombie; it must already count as dead.
	zombie := false
	for i := 0; i < 1000 && !zombie; i++ {
		st, _, err := stat(cmd.Process.Pid)
		zombie = err == nil && st == 'Z'
		time.Sleep(time.Millisecond)
	}
	if !zombie {
		t.Fatal("killed child never became a zombie")
	}
	if Alive(id) {
		t.Fatal("killed (zombie) child alive")
	}
	cmd.Wait()
	if Alive(id) {
		t.Fatal("reaped child alive")
	}
}

func TestAliveMatch(t *testing.T) {
	s := Self()
	if !AliveMatch(s.Pid, s.Tag, 0x1ff) || AliveMatch(s.Pid, s.Tag^1, 0x1ff) {
		t.Fatal("AliveMatch on self")
	}
	pp := uint32(os.Getppid())
	tag, err := StartTag(int(pp))
	if err != nil {
		t.Fatal(err)
	}
	if !AliveMatch(pp, tag, 0x1ff) || AliveMatch(pp, tag+1, 0x1ff) || !AliveMatch(pp, tag+0x200, 0x1ff) {
		t.Fatal("AliveMatch on parent: the mask must decide which bits count")
	}
	if AliveMatch(MaxPid, 1, 0x1ff) || AliveMatch(0, 0, 0) {
		t.Fatal("AliveMatch on impossible pids")
	}
}
