//go:build linux

package condition_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
)

func init() {
	// holddie PATH KIND: acquire the lock, say ready, and hold it until
	// killed.
	proctest.Register("holddie", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		if err := s.c.Acquire(context.Background()); err != nil {
			return err
		}
		proctest.SignalReady()
		select {}
	})
	// waitnr PATH KIND: acquire, Wait up to 30 s, print "done <err>
	// <waiters> <notified>" (the table as the waiter left it), release
	// only if the lock came back.
	proctest.Register("waitnr", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		if err := s.c.Acquire(context.Background()); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = s.c.Wait(ctx)
		st := s.c.State()
		fmt.Println("done", errName(err), st.Waiters, st.Notified)
		if errors.Is(err, condition.ErrNotRecoverable) {
			return nil
		}
		return s.c.Release()
	})
}

// TestWaitNotRecoverable: a waiter notified by a holder that took the
// lock over from a dead owner and released it without Consistent gets
// ErrNotRecoverable from Wait, without the lock, and frees its slot: the
// occupancy bitmap (documented at offset 192 of the Condition) is empty
// after it.
func TestWaitNotRecoverable(t *testing.T) {
	for _, kind := range []string{"lock", "own"} {
		t.Run(kind, func(t *testing.T) {
			s := newSetup(t, kind, 1) // one slot: a leaked one would show
			w := proctest.Start(t, "waitnr", s.path, s.kind)
			waitFor(t, "waiting", 20*time.Second, func() bool { return s.c.State().Waiters == 1 })
			h := proctest.Start(t, "holddie", s.path, s.kind)
			h.Expect(proctest.Ready, 20*time.Second)
			h.Kill()
			<-h.Done()
			if err := s.c.Acquire(context.Background()); !errors.Is(err, condition.ErrOwnerDead) {
				t.Fatalf("Acquire after the holder died: %v, want ErrOwnerDead", err)
			}
			if err := s.c.Notify(1); err != nil {
				t.Fatal(err)
			}
			if err := s.c.Release(); err != nil { // without Consistent
				t.Fatal(err)
			}
			if line := w.Line(10 * time.Second); line != "done notrecoverable 0 0" {
				t.Fatalf("waiter: %q, want done notrecoverable 0 0", line)
			}
			w.WaitOK()
			bm := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.mem[offCond+192])))
			if st := s.c.State(); st.Waiters != 0 || st.Notified != 0 || bm != 0 {
				t.Fatalf("after the waiter: %+v, bitmap %#x", st, bm)
			}
		})
	}
}
