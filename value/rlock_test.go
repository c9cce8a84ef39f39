//go:build linux

package value

import (
	"context"
	"testing"

	"github.com/mpipc/mpipc/rlock"
)

var _ Locker = (*rlock.RLock)(nil)

// TestRecursiveLock: with an RLock as the Value's lock (Python's default),
// Update works while the caller already holds the lock.
func TestRecursiveLock(t *testing.T) {
	rl, err := rlock.Init(anon(t, rlock.Size), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := newValue[int64](t, 1, &Options{Lock: rl})
	if err := v.Lock().Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	x, err := v.Update(func(p *int64) { *p += 41 })
	if err != nil || x != 42 {
		t.Fatalf("Update under a held RLock = %d, %v", x, err)
	}
	if err := v.Lock().Release(); err != nil {
		t.Fatal(err)
	}
	if rl.Held() {
		t.Fatal("RLock still held")
	}
}
