//go:build linux

package barrier

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
)

// TestReleaseWakesLateObserver: an observer (waitset.Tripped) that arms
// after a release swapped the state word, but before the release counted
// the round, reads the old count and sleeps; the release must wake it.
func TestReleaseWakesLateObserver(t *testing.T) {
	// Wait sleeps alone on the word; WaitAny goes through the hub, which
	// passes on only wakes that changed the word.
	for _, any := range []bool{false, true} {
		t.Run(fmt.Sprintf("WaitAny=%v", any), func(t *testing.T) { releaseWakesLateObserver(t, any) })
	}
}

func releaseWakesLateObserver(t *testing.T, any bool) {
	mem := make([]uint64, SizeOf(1, 0)/8)
	b, err := Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*8), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	defer func() { releaseHook = nil }()
	releaseHook = func(b *Barrier) {
		releaseHook = nil
		word, val := b.Arm()
		if b.Rounds() != 0 {
			t.Error("the round was counted before the hook")
		}
		go func() {
			if any {
				res <- futex.WaitAny(context.Background(), []*uint32{word}, []uint32{val}, time.Now().Add(2*time.Second))
				return
			}
			res <- futex.Wait(context.Background(), word, val, time.Now().Add(2*time.Second))
		}()
		time.Sleep(50 * time.Millisecond) // the observer sleeps
	}
	if _, err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("the observer that armed inside the release was not woken: %v", err)
	}
	if b.Rounds() != 1 {
		t.Fatalf("rounds = %d", b.Rounds())
	}
}

// TestReleaseChangesWordForLateObserver: an observer that armed inside a
// release (after its swap, before the round count moved) and reaches its
// sleep only after the release's wake must not sleep: the wake changed the
// word (the futex contract), so a sleep on the value it armed with returns
// at once. A wake that left the word as it was would leave it asleep.
func TestReleaseChangesWordForLateObserver(t *testing.T) {
	mem := make([]uint64, SizeOf(1, 0)/8)
	b, err := Init(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*8), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var word *uint32
	var val uint32
	defer func() { releaseHook = nil }()
	releaseHook = func(b *Barrier) {
		releaseHook = nil
		word, val = b.Arm()
	}
	if _, err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if word == nil {
		t.Fatal("the release hook did not run")
	}
	for _, any := range []bool{false, true} {
		dl := time.Now().Add(500 * time.Millisecond)
		if any {
			err = futex.WaitAny(context.Background(), []*uint32{word}, []uint32{val}, dl)
		} else {
			err = futex.Wait(context.Background(), word, val, dl)
		}
		if err != nil {
			t.Fatalf("WaitAny=%v: the late observer slept through the release: %v", any, err)
		}
	}
}
