//go:build linux

package array

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

func init() {
	proctest.Register("copyInLoop", roleCopyInLoop)
	proctest.Register("deadReader", roleDeadReader)
}

// tornLen is the length of the Array[uint64] a writer is stopped in the
// middle of copying: 512 KiB, so that a stop lands inside CopyIn most of
// the time.
const tornLen = 1 << 16

// tornCheck is the liveness check interval of the owner-death tests.
const tornCheck = 20 * time.Millisecond

// attachTorn attaches to the Array[uint64] in PATH with the registry the
// test's processes share.
func attachTorn(path string) (*Array[uint64], error) {
	mem, err := mapPath(path)
	if err != nil {
		return nil, err
	}
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, err
	}
	return Attach[uint64](mem, &Options{CheckInterval: tornCheck, Registry: reg})
}

// roleCopyInLoop: PATH — copies x, x+1, x+2, ... into every element of the
// Array[uint64] in PATH with CopyIn, forever.
func roleCopyInLoop(args []string) error {
	a, err := attachTorn(args[0])
	if err != nil {
		return err
	}
	buf := make([]uint64, a.Len())
	proctest.SignalReady()
	for x := a.At(0) + 1; ; x++ {
		for i := range buf {
			buf[i] = x
		}
		a.CopyIn(buf, 0)
	}
}

// uniform reports whether every element of s equals the first.
func uniform(s []uint64) bool {
	for _, x := range s {
		if x != s[0] {
			return false
		}
	}
	return true
}

// roleDeadReader: PATH MODE — uses the Array[uint64] in PATH after a writer
// died holding its lock, and prints what it saw as key=value words:
//
//	take     the first method takes the lock over: "update" (Update, which
//	         reports the death itself), "copyoutctx" (CopyOutContext, which
//	         does too) or "copyout" (CopyOut, then Err)
//	again    a later process, without repairing: Err, SetSlice, Update
//	repair   Update rewrites every element to the largest, then
//	         Consistent, then normal use
//	clean    normal use only
func roleDeadReader(args []string) error {
	a, err := attachTorn(args[0])
	if err != nil {
		return err
	}
	var out []string
	say := func(k string, v any) { out = append(out, fmt.Sprintf("%s=%v", k, v)) }
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
	got := make([]uint64, a.Len())
	switch mode := args[1]; mode {
	case "update":
		err := a.Update(0, a.Len(), func(s []uint64) { copy(got, s) })
		say("takeover", kind(err))
		say("torn", !uniform(got))
	case "copyout":
		a.CopyOut(got, 0)
		say("takeover", kind(a.Err()))
		say("torn", !uniform(got))
	case "copyoutctx":
		n, err := a.CopyOutContext(context.Background(), got, 0)
		say("takeover", kind(err))
		say("torn", n == len(got) && !uniform(got))
	case "again":
		say("err", kind(a.Err()))
		say("inconsistent", a.State().Inconsistent)
		a.CopyOut(got, 0)
		say("torn", !uniform(got))
		say("setslice", kind(a.SetSlice(0, 1, got[:1])))
		say("update", kind(a.Update(0, 1, func([]uint64) {})))
		_, err := a.CopyInContext(context.Background(), got[:1], 0)
		say("copyin", kind(err))
	case "repair", "clean":
		var mx uint64
		err := a.Update(0, a.Len(), func(s []uint64) {
			for _, x := range s {
				mx = max(mx, x)
			}
			for i := range s {
				s[i] = mx
			}
		})
		say("update", kind(err))
		if mode == "repair" {
			say("consistent", kind(a.Consistent()))
			say("consistent2", kind(a.Consistent()))
		}
		buf := make([]uint64, a.Len())
		ok := true
		for x := mx + 1; x < mx+20; x++ {
			for i := range buf {
				buf[i] = x
			}
			a.CopyIn(buf, 0)
			a.CopyOut(got, 0)
			ok = ok && uniform(got) && got[0] == x
		}
		say("works", ok)
		say("err", kind(a.Err()))
		say("setslice", kind(a.SetSlice(0, 1, got[:1])))
		say("update2", kind(a.Update(0, 1, func([]uint64) {})))
		_, err = a.CopyOutContext(context.Background(), got, 0)
		say("copyout", kind(err))
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

// stopMidCopyIn starts a writer copying into the Array in mem over and
// over, stops it (SIGSTOP) until the shared memory shows it inside a
// CopyIn — its lock held, the first elements holding the new value and the
// rest the old one — and kills it there (SIGKILL). It returns the number
// of elements already written.
func stopMidCopyIn(t *testing.T, mem []byte, path string) int {
	t.Helper()
	c := proctest.Start(t, "copyInLoop", path)
	c.Expect(proctest.Ready, 10*time.Second)
	lockWord := (*uint64)(unsafe.Pointer(&mem[ownLockOff]))
	elem := func(i int) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[headerSize+8*i]))) }
	for try := 0; try < 500; try++ {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		if err := c.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		proctest.WaitStopped(t, c.Pid())
		// Mid-update: the lock is held, and the elements are x up to
		// some k and x-1 from k on, with 0 < k < tornLen.
		k, first, last := 0, elem(0), elem(tornLen-1)
		if atomic.LoadUint64(lockWord) != 0 && first == last+1 {
			for k < tornLen && elem(k) == first {
				k++
			}
			ok := true
			for i := k; i < tornLen && ok; i++ {
				ok = elem(i) == last
			}
			if ok {
				if err := c.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if r := c.Wait(0); r.Signal != syscall.SIGKILL {
					t.Fatalf("writer did not die by SIGKILL: %+v", r)
				}
				t.Logf("writer killed after try %d with %d of %d elements written", try+1, k, tornLen)
				return k
			}
		}
		if err := c.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("never stopped the writer inside a CopyIn in 500 tries")
	return 0
}

// TestProcWriterKilledMidCopyIn: a writer killed in the middle of a CopyIn
// leaves the Array half written and its lock held. The process whose
// method takes the lock over is told (ErrOwnerDead from Update, or from
// Err after CopyOut); the Array stays inconsistent for every later process
// (Err, SetSlice and Update report it) until one repairs and calls
// Consistent; after that the Array works normally and nothing reports.
func TestProcWriterKilledMidCopyIn(t *testing.T) {
	for _, take := range []string{"update", "copyoutctx", "copyout"} {
		t.Run(take, func(t *testing.T) {
			size, _ := SizeOf[uint64](tornLen)
			mem, path := mapFile(t, size)
			a, err := Init[uint64](mem, tornLen, nil, &Options{CheckInterval: tornCheck, Registry: regtest.Registry(t, path)})
			if err != nil {
				t.Fatal(err)
			}
			stopMidCopyIn(t, mem, path)
			if st := a.State(); !st.Lock.Held || st.Lock.HolderAlive || st.Inconsistent {
				t.Fatalf("state after the kill: %+v, lock %+v", st, st.Lock)
			}
			steps := []struct{ mode, want string }{
				{take, "takeover=ownerdead torn=true"},
				{"again", "err=ownerdead inconsistent=true torn=true setslice=ownerdead update=ownerdead copyin=ownerdead"},
				{"again", "err=ownerdead inconsistent=true torn=true setslice=ownerdead update=ownerdead copyin=ownerdead"},
				{"repair", "update=ownerdead consistent=nil consistent2=notinconsistent works=true err=nil setslice=nil update2=nil copyout=nil"},
				{"clean", "update=nil works=true err=nil setslice=nil update2=nil copyout=nil"},
			}
			for _, s := range steps {
				got := strings.TrimSpace(proctest.Start(t, "deadReader", path, s.mode).WaitOK())
				if got != s.want {
					t.Fatalf("%s: %s\nwant        %s", s.mode, got, s.want)
				}
			}
			st := a.State()
			if st.Inconsistent || st.Lock.Held || st.Lock.Inconsistent || st.Lock.NotRecoverable {
				t.Fatalf("state after the repair: %+v, lock %+v", st, st.Lock)
			}
			if err := a.Err(); err != nil {
				t.Fatalf("Err after the repair: %v", err)
			}
		})
	}
}

// TestConsistentNotInconsistent: Consistent on an Array nobody marked is
// ErrNotInconsistent, and Err is nil.
func TestConsistentNotInconsistent(t *testing.T) {
	a := newArray[int64](t, 4, nil, nil)
	if err := a.Consistent(); !errors.Is(err, ErrNotInconsistent) {
		t.Fatalf("Consistent = %v, want ErrNotInconsistent", err)
	}
	if err := a.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

// TestCopyContextGivesUp: CopyOutContext and CopyInContext give up with
// the context's error, copying nothing, while another goroutine holds the
// lock, and work once it is released.
func TestCopyContextGivesUp(t *testing.T) {
	a := newArray[int64](t, 4, []int64{1, 2, 3, 4}, nil)
	if err := a.Lock().Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		dst := make([]int64, 4)
		if n, err := a.CopyOutContext(ctx, dst, 0); n != 0 || !errors.Is(err, context.DeadlineExceeded) || dst[0] != 0 {
			t.Errorf("CopyOutContext with the lock held elsewhere = %d, %v, %v", n, err, dst)
		}
		if n, err := a.CopyInContext(ctx, []int64{9}, 0); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CopyInContext with the lock held elsewhere = %d, %v", n, err)
		}
	}()
	<-done
	a.Lock().Release()
	if x := a.At(0); x != 1 {
		t.Fatalf("element 0 = %d after the calls that gave up", x)
	}
	if n, err := a.CopyInContext(context.Background(), []int64{9, 8}, 2); n != 2 || err != nil {
		t.Fatalf("CopyInContext = %d, %v", n, err)
	}
	dst := make([]int64, 4)
	if n, err := a.CopyOutContext(context.Background(), dst, 0); n != 4 || err != nil || dst[3] != 8 {
		t.Fatalf("CopyOutContext = %d, %v, %v", n, err, dst)
	}
}
