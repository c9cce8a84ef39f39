//go:build linux

package condition_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

var errCorrupt = shm.ErrCorrupt

func newSegment(t *testing.T) (*shm.Segment, string) {
	seg, name := regtest.Segment(t)
	return seg, name
}

func TestCreateOpen(t *testing.T) {
	seg, segName := newSegment(t)
	if _, err := lock.Create(seg, "m", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rlock.Create(seg, "r", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, lock, want string }{
		{"c-own", "", "*rlock.RLock"},
		{"c-lock", "m", "*lock.Lock"},
		{"c-rlock", "r", "*rlock.RLock"},
	} {
		c, err := condition.Create(seg, tc.name, tc.lock, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		o, err := condition.Open(seg, tc.name, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		if got := typeName(o.Lock()); got != tc.want {
			t.Fatalf("%s: lock is %s, want %s", tc.name, got, tc.want)
		}
		// The two handles share the lock: through the second, the same
		// goroutine re-enters an RLock (level 2) and cannot take a Lock.
		c.Acquire(context.Background())
		ok, _ := o.TryAcquire()
		if ok != (tc.want == "*rlock.RLock") || !o.State().Held {
			t.Fatalf("%s: TryAcquire through the opened handle = %v, state %+v", tc.name, ok, o.State())
		}
		if ok {
			if lv := o.State().Level; lv != 2 {
				t.Fatalf("%s: level %d", tc.name, lv)
			}
			o.Release()
		}
		c.Release()
	}
	if _, err := condition.Create(seg, "c-own", "", nil); !errors.Is(err, shm.ErrExist) {
		t.Fatalf("Create of a taken name = %v", err)
	}
	if _, err := condition.Create(seg, "c-x", "missing", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Create with a missing lock = %v", err)
	}
	if _, err := condition.Create(seg, "c-y", "c-own", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("Create bound to a condition = %v", err)
	}
	if _, err := condition.Open(seg, "m", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("Open of a Lock = %v", err)
	}
	if _, err := condition.Open(seg, "nothing", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Open of a missing name = %v", err)
	}
	if _, err := rlock.Open(seg, "m", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("rlock.Open of a Lock = %v", err)
	}
	if _, err := rlock.Open(seg, "r", nil); err != nil {
		t.Fatal(err)
	}

	// Other processes open the Conditions by name, with their locks.
	for _, name := range []string{"c-own", "c-lock", "c-rlock"} {
		c, _ := condition.Open(seg, name, testOpts)
		child := proctest.Start(t, "segwaiter", segName, name)
		waitFor(t, name+" waiter", 20*time.Second, func() bool {
			select {
			case <-child.Done():
				t.Fatalf("%s: child ended: %+v", name, child.Wait(time.Second))
			default:
			}
			return c.State().Waiters == 1
		})
		c.Acquire(context.Background())
		c.Notify(1)
		c.Release()
		if out := child.WaitOK(); out != "done true nil\n" {
			t.Fatalf("%s: child: %q", name, out)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *lock.Lock:
		return "*lock.Lock"
	case *rlock.RLock:
		return "*rlock.RLock"
	}
	return "?"
}

// TestAttachCorrupt: every header word Attach trusts, made impossible,
// gives shm.ErrCorrupt.
func TestAttachCorrupt(t *testing.T) {
	mem, _ := sharedMem(t)
	m := mem[:offCond2]
	u32 := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }
	if _, err := condition.Attach(m, nil, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Attach of zeroes = %v", err)
	}
	for _, tc := range []struct {
		name string
		off  int
		val  uint32
	}{
		{"magic", 0, 1},
		{"version", 4, 99},
		{"no slots", 8, 0},
		{"too many slots", 8, condition.MaxSlots + 1},
		{"slots beyond memory", 8, 4096},
		{"lock kind", 12, 7},
	} {
		if _, err := condition.Init(m, nil, nil); err != nil {
			t.Fatal(err)
		}
		atomic.StoreUint32(u32(tc.off), tc.val)
		if _, err := condition.Attach(m, nil, nil); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("%s: Attach = %v", tc.name, err)
		}
	}
	// The reserved word at 16 (once an occupied count that a kill could
	// leave out of step with the bitmap) is not trusted: any value attaches.
	if _, err := condition.Init(m, nil, nil); err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(u32(16), 1000)
	if _, err := condition.Attach(m, nil, nil); err != nil {
		t.Fatalf("Attach with garbage in the reserved word = %v", err)
	}
	if _, err := condition.Attach(m[4:], nil, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("misaligned Attach = %v", err)
	}
}
