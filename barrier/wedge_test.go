//go:build linux

package barrier_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

// TestAllSlotsHeldByDead: a Barrier(4) has 8 registration slots; 8 parties
// register and are SIGKILLed while nobody waits, so every slot names a
// dead process and no sleeping Wait is there to notice. A new handle must
// still open (the dead are reclaimed at Open), Reset must too, and a full
// round of 4 new processes must pass.
func TestAllSlotsHeldByDead(t *testing.T) {
	for _, how := range []string{"open", "reset"} {
		t.Run(how, func(t *testing.T) {
			path, mem, obs := newBarrier(t, 4, &barrier.Options{Observe: true})
			var idle []*proctest.Child
			for i := 0; i < 8; i++ {
				c := proctest.Start(t, "idle", path)
				c.Expect(proctest.Ready, 0)
				idle = append(idle, c)
			}
			if n := len(obs.State().Registered); n != 8 {
				t.Fatalf("%d registered, want 8", n)
			}
			for _, c := range idle {
				c.Kill()
				<-c.Done()
			}
			reg := regtest.Registry(t, path)
			switch how {
			case "open":
				b, err := barrier.Attach(mem[:barrier.SizeOf(4, 0)], &barrier.Options{Registry: reg})
				if err != nil {
					t.Fatalf("Attach with every slot held by the dead = %v", err)
				}
				b.Close()
			case "reset":
				obs.Reset()
				for _, r := range obs.State().Registered {
					if !r.Alive {
						t.Fatalf("Reset left dead process %d registered", r.Pid)
					}
				}
			}
			var cs []*proctest.Child
			for i := 0; i < 4; i++ {
				cs = append(cs, proctest.Start(t, "rounds", path, "4", strconv.Itoa(i), "10"))
			}
			for _, c := range cs {
				c.Expect(proctest.Ready, 0)
			}
			goFlag(t, path)
			proctest.WaitAll(cs)
		})
	}
}

// TestDeadWaiterNeverLeaves: a party arrives and is killed while it waits;
// the next party's arrival completes the round, which then drains for
// ever: the dead waiter never leaves. The Reset that follows frees the
// dead party's slot; it must also break the round it will never leave
// (a Reset of a barrier that drains does nothing), or every later Wait
// times out. Found by the window hunter (faults/windows_test.go).
func TestDeadWaiterNeverLeaves(t *testing.T) {
	path, mem, b := newBarrier(t, 2, nil)
	c := proctest.Start(t, "waitbroken", path)
	c.Expect(proctest.Ready, 0)
	waitFor(t, "the child's arrival", func() bool { return b.NWaiting() == 1 })
	c.Kill()
	<-c.Done()
	if idx, err := b.WaitTimeout(5 * time.Second); err != nil || idx != 1 {
		t.Fatalf("Wait completing the round with the dead party's arrival = %d, %v", idx, err)
	}
	b.Reset()
	b2 := attach(t, mem[:barrier.SizeOf(2, 0)], &barrier.Options{Registry: regtest.Registry(t, path)})
	res := make(chan error, 1)
	go func() {
		for i := 0; i < 10; i++ {
			if _, err := b2.WaitTimeout(5 * time.Second); err != nil {
				res <- err
				return
			}
		}
		res <- nil
	}()
	for i := 0; i < 10; i++ {
		if _, err := b.WaitTimeout(5 * time.Second); err != nil {
			t.Fatalf("round %d after Reset: %v (%+v)", i, err, b.State())
		}
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}
