//go:build linux

package rlock

import "testing"

func TestGoidCalibrated(t *testing.T) {
	if haveGetg && goidOff == 0 {
		t.Fatalf("goid offset not found")
	}
	t.Logf("goid offset %d", goidOff)
	for i := 0; i < 10; i++ {
		ch := make(chan [2]uint64)
		go func() { ch <- [2]uint64{goid(), slowGoid()} }()
		v := <-ch
		if v[0] != v[1] || v[0] == 0 {
			t.Fatalf("goid %d, slow %d", v[0], v[1])
		}
	}
}

func BenchmarkGoid(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		goid()
	}
}

func BenchmarkGoidSlow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		slowGoid()
	}
}
