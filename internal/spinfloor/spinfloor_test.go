package spinfloor

import "testing"

// TestFloorOffAndProbe: the floor applies until Off waits in a row ran out
// of spin, then to one wait in Probe, and again to every wait after one
// whose spin succeeded; never on one CPU.
func TestFloorOffAndProbe(t *testing.T) {
	mc := multicore
	defer func() { multicore = mc; fails.Store(0) }()
	multicore = true
	fails.Store(0)
	for i := 0; i < Off; i++ {
		if got := Floor(); got != Spins {
			t.Fatalf("after %d failed waits: floor %d, want %d", i, got, Spins)
		}
		Done(false)
	}
	on := 0
	for i := 0; i < 4*Probe; i++ {
		if Floor() == Spins {
			on++
		}
		Done(false)
	}
	if on != 4 {
		t.Fatalf("floor on %d times in %d failed waits, want 4 (one in %d)", on, 4*Probe, Probe)
	}
	Done(true)
	if got := Floor(); got != Spins {
		t.Fatalf("after a wait whose spin succeeded: floor %d, want %d", got, Spins)
	}
	multicore = false
	if got := Floor(); got != 0 {
		t.Fatalf("one CPU: floor %d, want 0", got)
	}
}

// TestSpinCountsTheFloor: Spin keeps spinning for the whole floor,
// whatever the adaptive budget, and stops without one once the budget is
// spent.
func TestSpinCountsTheFloor(t *testing.T) {
	k := 0
	for Spin(k, Spins) {
		k++
		if k > 10*Spins {
			t.Fatal("Spin never stopped")
		}
	}
	if k < Spins {
		t.Fatalf("spun %d iterations, want at least the floor %d", k, Spins)
	}
	k = 0
	for Spin(k, 0) {
		k++
		if k > 10*Spins {
			t.Fatal("Spin never stopped")
		}
	}
}
