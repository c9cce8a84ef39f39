package release_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mpipc/mpipc/internal/release"
)

// TestStoresPublish: message passing between two goroutines. The writer
// stores the data with Store64 and then the turn with Store32; a reader
// that sees the turn must see the data.
func TestStoresPublish(t *testing.T) {
	n := uint32(20_000)
	if testing.Short() {
		n = 2_000
	}
	var data uint64
	var turn uint32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint32(0); i < n; i++ {
			for atomic.LoadUint32(&turn) != 2*i {
				runtime.Gosched() // GOMAXPROCS may be 1
			}
			release.Store64(&data, uint64(i)<<32|uint64(i))
			release.Store32(&turn, 2*i+1)
		}
	}()
	for i := uint32(0); i < n; i++ {
		for atomic.LoadUint32(&turn) != 2*i+1 {
			runtime.Gosched()
		}
		if d := atomic.LoadUint64(&data); d != uint64(i)<<32|uint64(i) {
			t.Fatalf("round %d: turn seen, data %#x", i, d)
		}
		atomic.StoreUint32(&turn, 2*i+2)
	}
	wg.Wait()
}

// TestStoreWidths: each store writes its word and nothing beside it.
func TestStoreWidths(t *testing.T) {
	w32 := [3]uint32{1, 2, 3}
	w64 := [3]uint64{1, 2, 3}
	release.Store32(&w32[1], 0xdeadbeef)
	release.Store64(&w64[1], 0x0123456789abcdef)
	if w32 != [3]uint32{1, 0xdeadbeef, 3} || w64 != [3]uint64{1, 0x0123456789abcdef, 3} {
		t.Fatalf("stored %#x %#x", w32, w64)
	}
}

// BenchmarkStore32 against atomic.StoreUint32, which is an XCHG on amd64.
func BenchmarkStore32(b *testing.B) {
	var w uint32
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		release.Store32(&w, uint32(i))
	}
}

func BenchmarkAtomicStore32(b *testing.B) {
	var w uint32
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		atomic.StoreUint32(&w, uint32(i))
	}
}
