//go:build linux

package lock_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
)

// BenchmarkLockUncontended is W1: one acquire+release, no syscall, no
// allocation. Compare with BenchmarkSyncMutexUncontended in the same run.
func BenchmarkLockUncontended(b *testing.B) {
	_, _, l := newShared(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Acquire(context.Background())
		l.Release()
	}
}

func BenchmarkLockTryUncontended(b *testing.B) {
	_, _, l := newShared(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.TryAcquire()
		l.Release()
	}
}

// BenchmarkCASPairFloor is the floor W1 can reach from Go: the two
// compare-and-swaps of an acquire+release on a word of the same shared
// mapping, with a cold-path call after each as any lock has. The call makes
// the compiler spill the loop counter, one store per iteration that each
// locked instruction must wait for; Lock adds only the two loads of its
// word pointer and identity. Compare with c-futex-mutex in the same run.
func BenchmarkCASPairFloor(b *testing.B) {
	_, mem, _ := newShared(b, nil)
	w := (*uint64)(unsafe.Pointer(&mem[memSize-64]))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !atomic.CompareAndSwapUint64(w, 0, 5) {
			coldPath(w)
		}
		if !atomic.CompareAndSwapUint64(w, 5, 0) {
			coldPath(w)
		}
	}
}

//go:noinline
func coldPath(w *uint64) { panic("word not as expected") }

// BenchmarkLockTryHeld is a TryAcquire on a lock another live process
// holds: after the first try found the holder alive, a load and a clock
// read, no system call (the registry is asked again once per check
// interval).
func BenchmarkLockTryHeld(b *testing.B) {
	path, _, l := newShared(b, nil)
	h := proctest.Start(b, "holder", path)
	h.Expect(proctest.Ready, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, err := l.TryAcquire(); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.StopTimer()
	h.Kill()
	<-h.Done()
}

func BenchmarkSyncMutexUncontended(b *testing.B) {
	var mu sync.Mutex
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		mu.Lock()
		//lint:ignore SA2001 the uncontended lock and unlock are what is measured
		mu.Unlock()
	}
}

// BenchmarkLockTwoProcesses is W2: this process and a child each do b.N
// increments of a shared counter under the Lock; reports total ops/s.
func BenchmarkLockTwoProcesses(b *testing.B) {
	path, mem, l := newShared(b, nil)
	start := startWord(mem)
	c := proctest.Start(b, "contend", path, strconv.Itoa(b.N))
	c.Expect(proctest.Ready, 0)
	cnt := counter(mem)
	b.ReportAllocs()
	b.ResetTimer()
	atomic.StoreUint32(start, 1)
	for i := 0; i < b.N; i++ {
		l.Acquire(context.Background())
		*cnt++
		l.Release()
	}
	c.WaitOK()
	b.StopTimer()
	if *cnt != int64(2*b.N) {
		b.Fatalf("count %d, want %d", *cnt, 2*b.N)
	}
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkLockHandoffGoroutines: two goroutines of one process alternate
// strictly through the Lock and an atomic turn word.
func BenchmarkLockHandoffGoroutines(b *testing.B) {
	_, mem, l := newShared(b, nil)
	turn := (*uint32)(unsafe.Pointer(&mem[192]))
	b.ReportAllocs()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < b.N; i++ {
			for {
				l.Acquire(context.Background())
				if atomic.LoadUint32(turn) == 1 {
					break
				}
				l.Release()
			}
			atomic.StoreUint32(turn, 0)
			l.Release()
		}
	}()
	for i := 0; i < b.N; i++ {
		for {
			l.Acquire(context.Background())
			if atomic.LoadUint32(turn) == 0 {
				break
			}
			l.Release()
		}
		atomic.StoreUint32(turn, 1)
		l.Release()
	}
	wg.Wait()
}

var _ = lock.Size

// BenchmarkLockTimeoutUncontended: the timed form reads no clock when the
// lock is free.
func BenchmarkLockTimeoutUncontended(b *testing.B) {
	_, _, l := newShared(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.AcquireTimeout(time.Second)
		l.Release()
	}
}
