//go:build linux

package shm

import (
	"strconv"
	"testing"
)

// BenchmarkLookup finds an existing object among n in the directory: a
// scan of the entries and the checks, no syscall, no allocation.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 64, 10000} {
		b.Run("objects="+strconv.Itoa(n), func(b *testing.B) {
			s, _ := mustCreate(b, &Options{MaxObjects: n, Size: int64(n)*64 + 8<<20})
			var last Spec
			for i := 0; i < n; i++ {
				last = Spec{Name: "object-" + strconv.Itoa(i), Kind: KindBytes, KindVersion: 1, Fingerprint: 7, Size: 64}
				if _, err := s.Alloc(last, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Lookup(last); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAlloc places objects in a fresh segment: the robust segment
// lock, a directory scan and the entry writes.
func BenchmarkAlloc(b *testing.B) {
	b.ReportAllocs()
	names := make([]string, 64)
	for j := range names {
		names[j] = "o" + strconv.Itoa(j)
	}
	for i := 0; i < b.N; {
		b.StopTimer()
		s, err := CreateAnonymous(64 << 10)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < 64 && i < b.N; j, i = j+1, i+1 {
			if _, err := s.Alloc(Spec{Name: names[j], Kind: KindBytes, Size: 64}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
