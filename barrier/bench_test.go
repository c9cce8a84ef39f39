//go:build linux

package barrier_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
)

// childW5 is the second party of the W5 benchmark.
func childW5(args []string) error {
	mem, b, err := attachChild(args[0], nil)
	if err != nil {
		return err
	}
	defer b.Close()
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	waitGo(mem)
	mine, peer := i32(mem, offRounds+64), i32(mem, offRounds)
	for r := 0; r < n; r++ {
		atomic.StoreInt32(mine, int32(r))
		if _, err := b.Wait(context.Background()); err != nil {
			return err
		}
		if o := atomic.LoadInt32(peer); o < int32(r) || o > int32(r)+1 {
			return fmt.Errorf("round %d: peer at %d", r, o)
		}
	}
	return nil
}

// BenchmarkW5BarrierRounds is workload W5 of ../shared/anchors: a
// Barrier(2) with two processes; each publishes its round before the
// barrier and checks the peer's after it. One op is one round.
func BenchmarkW5BarrierRounds(b *testing.B) {
	path, mem, bar := newBarrier(b, 2, nil)
	c := proctest.Start(b, "w5", path, strconv.Itoa(b.N))
	c.Expect(proctest.Ready, 0)
	b.ReportAllocs()
	b.ResetTimer()
	atomic.StoreUint32(u32(mem, offGo), 1)
	mine, peer := i32(mem, offRounds), i32(mem, offRounds+64)
	for r := 0; r < b.N; r++ {
		atomic.StoreInt32(mine, int32(r))
		if _, err := bar.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
		if o := atomic.LoadInt32(peer); o < int32(r) || o > int32(r)+1 {
			b.Fatalf("round %d: peer at %d", r, o)
		}
	}
	b.StopTimer()
	c.WaitOK()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
}

// BenchmarkBarrierSingleParty is the cost of a Wait that needs no other
// party: the fast path, with no syscall and no allocation.
func BenchmarkBarrierSingleParty(b *testing.B) {
	_, _, bar := newBarrier(b, 1, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := bar.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
