//go:build linux

package rlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

func TestCreateOpen(t *testing.T) {
	seg, name := regtest.Segment(t)
	r, err := rlock.Create(seg, "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rlock.Create(seg, "r", nil); !errors.Is(err, shm.ErrExist) {
		t.Fatalf("Create of a taken name = %v", err)
	}
	if _, err := lock.Create(seg, "m", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rlock.Open(seg, "m", nil); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("Open of a Lock = %v", err)
	}
	if _, err := rlock.Open(seg, "nothing", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Open of a missing name = %v", err)
	}
	o, err := rlock.Open(seg, "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Acquire(context.Background())
	o.Acquire(context.Background()) // the same RLock: the owner re-enters
	if r.Level() != 2 {
		t.Fatalf("level %d", r.Level())
	}
	c := proctest.Start(t, "segtry", name, "r")
	if got := c.Line(10 * time.Second); got != "try false nil" {
		t.Fatalf("child: %q", got)
	}
	c.WaitOK()
	r.Release()
	o.Release()
	c = proctest.Start(t, "segtry", name, "r")
	if got := c.Line(10 * time.Second); got != "try true nil" {
		t.Fatalf("child: %q", got)
	}
	c.WaitOK()
}
