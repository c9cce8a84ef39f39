//go:build linux

package value

import (
	"sync/atomic"
	"testing"
)

// BenchmarkLoadUncontended, Store, Add: one atomic instruction each on a
// Value[int64] in shared memory; BenchmarkAtomicAddInt64 is the peer on
// ordinary memory.
func BenchmarkLoadUncontended(b *testing.B) {
	v := newValue[int64](b, 1, nil)
	b.ReportAllocs()
	var s int64
	for b.Loop() {
		s += v.Load()
	}
	_ = s
}

func BenchmarkStoreUncontended(b *testing.B) {
	v := newValue[int64](b, 1, nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v.Store(int64(i))
	}
}

func BenchmarkAddUncontended(b *testing.B) {
	v := newValue[int64](b, 0, nil)
	b.ReportAllocs()
	for b.Loop() {
		v.Add(1)
	}
}

func BenchmarkAtomicAddInt64(b *testing.B) {
	var x struct {
		_ [64]byte
		n int64
		_ [56]byte
	}
	b.ReportAllocs()
	for b.Loop() {
		atomic.AddInt64(&x.n, 1)
	}
}

func BenchmarkAddParallel(b *testing.B) {
	v := newValue[int64](b, 0, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v.Add(1)
		}
	})
}

func BenchmarkAtomicAddInt64Parallel(b *testing.B) {
	var x struct {
		_ [64]byte
		n int64
		_ [56]byte
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			atomic.AddInt64(&x.n, 1)
		}
	})
}

// BenchmarkUpdateLocked: Update(+1) under the own lock (uncontended).
func BenchmarkUpdateLocked(b *testing.B) {
	v := newValue[int64](b, 0, nil)
	fn := func(p *int64) { *p++ }
	b.ReportAllocs()
	for b.Loop() {
		v.Update(fn)
	}
}

// Wide values: a 64-byte struct through the sequence word.
func BenchmarkWideLoad(b *testing.B) {
	v := newValue(b, pattern(1), nil)
	b.ReportAllocs()
	var s uint64
	for b.Loop() {
		s += v.Load().W[3]
	}
	_ = s
}

func BenchmarkWideStore(b *testing.B) {
	v := newValue(b, pattern(1), nil)
	x := pattern(2)
	b.ReportAllocs()
	for b.Loop() {
		v.Store(x)
	}
}

// BenchmarkWideLoadContended: Loads while another goroutine stores as fast
// as it can.
func BenchmarkWideLoadContended(b *testing.B) {
	v := newValue(b, pattern(1), nil)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(0); !stop.Load(); i++ {
			v.Store(pattern(i))
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		if !v.Load().uniform() {
			b.Fatal("torn")
		}
	}
	stop.Store(true)
	<-done
}
