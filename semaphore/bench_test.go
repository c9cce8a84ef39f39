//go:build linux

package semaphore_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/semaphore"
)

const offGo = 448 // ping-pong start flag

func BenchmarkSemaphoreUncontended(b *testing.B) {
	_, _, s := newSem(b, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Acquire(context.Background())
		s.Release(1)
	}
	b.StopTimer()
	if st := s.State(); st.Value != 1 || st.Waiters {
		b.Fatalf("state %+v", st)
	}
}

func BenchmarkSemaphoreTryAcquireUncontended(b *testing.B) {
	_, _, s := newSem(b, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.TryAcquire()
		s.Release(1)
	}
}

// childPong is side B of the W3 ping-pong: acquire s1, publish the round,
// release s2.
func childPong(args []string) error {
	mem, s1, err := attachChild(args[0])
	if err != nil {
		return err
	}
	s2, err := semaphore.Attach(mem[offSem2:offSem2+semaphore.Size], nil)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	for atomic.LoadUint32(u32(mem, offGo)) == 0 {
		runtime.Gosched()
	}
	round := i32(mem, offRound)
	for i := 0; i < n; i++ {
		if err := s1.Acquire(context.Background()); err != nil {
			return err
		}
		atomic.StoreInt32(round, int32(i+1))
		if err := s2.Release(1); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkW3SemaphorePingPong is workload W3 of ../shared/anchors: two
// processes, A releases s1 and acquires s2, B the reverse; one op is one
// round trip.
func BenchmarkW3SemaphorePingPong(b *testing.B) {
	path, mem, s1 := newSem(b, 0)
	s2, err := semaphore.Init(mem[offSem2:offSem2+semaphore.Size], 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := proctest.Start(b, "pong", path, strconv.Itoa(b.N))
	c.Expect(proctest.Ready, 0)
	b.ReportAllocs()
	b.ResetTimer()
	atomic.StoreUint32(u32(mem, offGo), 1)
	round := i32(mem, offRound)
	for i := 0; i < b.N; i++ {
		s1.Release(1)
		s2.Acquire(context.Background())
		if r := atomic.LoadInt32(round); r != int32(i+1) {
			b.Fatalf("round %d: B published %d", i, r)
		}
	}
	b.StopTimer()
	c.WaitOK()
	if s1.Value() != 0 || s2.Value() != 0 {
		panic(fmt.Sprint("values ", s1.Value(), s2.Value()))
	}
}
