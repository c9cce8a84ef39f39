package stats

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestSleepCountsOneSpinPerCall(t *testing.T) {
	var c Counters
	spun := true
	c.Sleep(&spun)
	c.Sleep(&spun)
	c.Sleep(&spun)
	noSpin := false
	c.Sleep(&noSpin)
	c.Wake()
	c.Timeout()
	c.OwnerDead()
	c.OwnerDead()
	want := Stats{Waits: 4, Wakes: 1, Timeouts: 1, OwnerDeaths: 2, SpinSleeps: 1}
	if got := c.Load(); got != want {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	if got := want.Add(want); got != (Stats{Waits: 8, Wakes: 2, Timeouts: 2, OwnerDeaths: 4, SpinSleeps: 2}) {
		t.Fatalf("Add = %+v", got)
	}
}

func TestConcurrentIncrements(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	const g, n = 8, 1000
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				spun := true
				c.Sleep(&spun)
				c.Wake()
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got.Waits != g*n || got.SpinSleeps != g*n || got.Wakes != g*n {
		t.Fatalf("after %d×%d: %+v", g, n, got)
	}
}

// handle stands for an object handle: the counters are a field of it, as
// in every mpipc handle, so the registry's weak pointers are interior ones.
type handle struct {
	name string
	ctr  Counters
}

// TestSnapshotSumsPerObject: two handles on one object add up; another
// object and another segment stay apart.
func TestSnapshotSumsPerObject(t *testing.T) {
	a, b, other, far := &handle{name: "a"}, &handle{name: "b"}, &handle{name: "other"}, &handle{name: "far"}
	Publish("/dev/shm/snap-a", "x", "lock", &a.ctr)
	Publish("/dev/shm/snap-a", "x", "lock", &b.ctr)
	Publish("/dev/shm/snap-a", "y", "event", &other.ctr)
	Publish("/dev/shm/snap-b", "x", "lock", &far.ctr)
	Publish("/dev/shm/snap-b", "x", "lock", &far.ctr) // again: still one handle
	a.ctr.Wake()
	b.ctr.Wake()
	b.ctr.Timeout()
	other.ctr.OwnerDead()
	s := Snapshot()
	if got, want := s["/dev/shm/snap-a"]["x"], (Object{Kind: "lock", Handles: 2, Stats: Stats{Wakes: 2, Timeouts: 1}}); got != want {
		t.Errorf("snap-a x: %+v, want %+v", got, want)
	}
	if got, want := s["/dev/shm/snap-a"]["y"], (Object{Kind: "event", Handles: 1, Stats: Stats{OwnerDeaths: 1}}); got != want {
		t.Errorf("snap-a y: %+v, want %+v", got, want)
	}
	if got, want := s["/dev/shm/snap-b"]["x"], (Object{Kind: "lock", Handles: 1}); got != want {
		t.Errorf("snap-b x: %+v, want %+v", got, want)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(other)
	runtime.KeepAlive(far)
}

// TestCollectedHandlesLeaveTheRegistry: handles that are dropped do not
// stay in the registry: a process that opens many objects over time and
// drops them keeps a bounded registry.
func TestCollectedHandlesLeaveTheRegistry(t *testing.T) {
	const n = 10000
	keep := new(handle)
	Publish("/dev/shm/gc", "kept", "lock", &keep.ctr)
	for i := range n {
		h := new(handle)
		Publish("/dev/shm/gc", "dropped", "lock", &h.ctr)
		if i == 0 {
			h.ctr.Wake()
		}
	}
	size := func() int {
		registry.mu.Lock()
		defer registry.mu.Unlock()
		return len(registry.m)
	}
	if size() < n {
		t.Fatalf("registry holds %d entries after %d Publish calls", size(), n+1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() > 100 { // other tests' handles may linger too
		if time.Now().After(deadline) {
			t.Fatalf("registry still holds %d entries 10 s after the handles were dropped", size())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if o := Snapshot()["/dev/shm/gc"]; o["kept"].Handles != 1 || o["dropped"].Handles > 100 {
		t.Errorf("after collection: %+v", o)
	}
	runtime.KeepAlive(keep)
}
