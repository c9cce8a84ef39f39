//go:build linux

package value

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

func init() {
	proctest.Register("stopInCompound", roleStopInCompound)
	proctest.Register("deadUpdater", roleDeadUpdater)
}

// The compound-update tests keep two Value[int64] in one file: v at 0 with
// its own lock, w at 4096 sharing v's lock (Options.Lock). The invariant
// the lock guards is v == w.
const compoundW = 4096

const compoundCheck = 20 * time.Millisecond

// attachCompound attaches to v and w in PATH.
func attachCompound(path string) (v, w *Value[int64], err error) {
	mem, err := mapPath(path)
	if err != nil {
		return nil, nil, err
	}
	opts := childOpts(path)
	if opts == nil {
		return nil, nil, fmt.Errorf("no registry for %s", path)
	}
	opts.CheckInterval = compoundCheck
	if v, err = Attach[int64](mem, opts); err != nil {
		return nil, nil, err
	}
	wo := *opts
	wo.Lock = v.Lock()
	w, err = Attach[int64](mem[compoundW:], &wo)
	return v, w, err
}

// roleStopInCompound: PATH — takes the lock, sets v = v+1 (the first half
// of "v += 1; w += 1") and stops itself (SIGSTOP) before w.
func roleStopInCompound(args []string) error {
	v, w, err := attachCompound(args[0])
	if err != nil {
		return err
	}
	if err := v.Lock().Acquire(context.Background()); err != nil {
		return err
	}
	v.Store(v.Load() + 1)
	proctest.SignalReady()
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	w.Store(w.Load() + 1) // not reached: the test kills the process first
	return v.Lock().Release()
}

// roleDeadUpdater: PATH MODE — uses v and w after a process died holding
// their lock, and prints what it saw as key=value words:
//
//	take    the first Update, which takes the lock over
//	again   a later process, without repairing: Err, State, Update
//	repair  Update, repair of w under the lock, Consistent, then use
//	clean   use only
func roleDeadUpdater(args []string) error {
	v, w, err := attachCompound(args[0])
	if err != nil {
		return err
	}
	var out []string
	say := func(k string, x any) { out = append(out, fmt.Sprintf("%s=%v", k, x)) }
	kind := func(err error) string {
		switch {
		case err == nil:
			return "nil"
		case errors.Is(err, ErrOwnerDead):
			return "ownerdead"
		case errors.Is(err, ErrNotInconsistent):
			return "notinconsistent"
		}
		return "other:" + err.Error()
	}
	bump := func(p *int64) { *p += 10 }
	switch mode := args[1]; mode {
	case "take", "again":
		if mode == "again" {
			say("err", kind(v.Err()))
			say("inconsistent", v.State().Inconsistent)
		}
		x, err := v.Update(bump) // applied, even when reporting
		say("update", kind(err))
		say("broken", x-10 != w.Load())
		w.Add(10)
	case "repair":
		_, err := v.Update(bump)
		say("update", kind(err))
		w.Add(10)
		ctx := context.Background()
		if err := v.Lock().Acquire(ctx); err != nil {
			return err
		}
		w.Store(v.Load()) // the repair: restore v == w
		say("consistent", kind(v.Consistent()))
		say("consistent2", kind(v.Consistent()))
		v.Lock().Release()
		fallthrough
	case "clean":
		_, err := v.Update(bump)
		say("after", kind(err))
		w.Add(10)
		say("err", kind(v.Err()))
		say("holds", v.Load() == w.Load())
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

// TestProcDeadInCompoundUpdate: a process killed (stopped first, so that
// the test sees it half way) between the two stores of a compound update
// under the lock of a Value leaves the invariant broken. The Update that
// takes the lock over applies its function and reports ErrOwnerDead; the
// Value stays inconsistent for every later process (Err, State, Update)
// until one repairs and calls Consistent; then nothing reports.
func TestProcDeadInCompoundUpdate(t *testing.T) {
	mem, path := mapFile(t, 8192)
	reg := regtest.Registry(t, path)
	v, err := Init[int64](mem, 0, &Options{CheckInterval: compoundCheck, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	w, err := Init[int64](mem[compoundW:], 0, &Options{Lock: v.Lock(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "stopInCompound", path)
	c.Expect(proctest.Ready, 10*time.Second)
	proctest.WaitStopped(t, c.Pid())
	// Half way: v written, w not, the lock held by the stopped process.
	if st := v.State(); v.Load() != 1 || w.Load() != 0 || !st.Lock.Held || st.Lock.HolderPid != c.Pid() {
		t.Fatalf("not half way: v=%d w=%d lock %+v", v.Load(), w.Load(), st.Lock)
	}
	c.Signal(syscall.SIGKILL)
	if r := c.Wait(0); r.Signal != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %+v", r)
	}
	steps := []struct{ mode, want string }{
		{"take", "update=ownerdead broken=true"},
		{"again", "err=ownerdead inconsistent=true update=ownerdead broken=true"},
		{"repair", "update=ownerdead consistent=nil consistent2=notinconsistent after=nil err=nil holds=true"},
		{"clean", "after=nil err=nil holds=true"},
	}
	for _, s := range steps {
		got := strings.TrimSpace(proctest.Start(t, "deadUpdater", path, s.mode).WaitOK())
		if got != s.want {
			t.Fatalf("%s: %s\nwant   %s", s.mode, got, s.want)
		}
	}
	if st := v.State(); st.Inconsistent || st.Lock.Held || st.Lock.Inconsistent || st.Lock.NotRecoverable {
		t.Fatalf("state after the repair: %+v, lock %+v", st, st.Lock)
	}
	if got := v.Load(); got != 1+5*10 || w.Load() != got {
		t.Fatalf("v=%d w=%d, want both %d", got, w.Load(), 1+5*10)
	}
}

// TestValueConsistentNotInconsistent: Consistent on a Value nobody marked
// is ErrNotInconsistent; Err is nil.
func TestValueConsistentNotInconsistent(t *testing.T) {
	size, _ := SizeOf[int64]()
	mem, _ := mapFile(t, size)
	v, err := Init[int64](mem, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Consistent(); !errors.Is(err, ErrNotInconsistent) {
		t.Fatalf("Consistent = %v, want ErrNotInconsistent", err)
	}
	if err := v.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}
