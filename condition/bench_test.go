//go:build linux

package condition_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
)

// BenchmarkNotifyNoWaiters: Notify(1) by the holder of the Condition's own
// RLock with nobody waiting: an ownership check and one load.
func BenchmarkNotifyNoWaiters(b *testing.B) {
	n := condition.SizeOf(0)
	buf := make([]uint64, n/8+8)
	c, err := condition.Init(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), n), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	c.Acquire(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		c.Notify(1)
	}
	c.Release()
}

// BenchmarkPingPong is the W4 workload: a Condition round trip between
// two processes (A here, B a child), one Condition and a turn counter.
// It reports the mean, median and 99th percentile round trip (the per
// round trip times include one time.Now, about 20-50 ns).
func BenchmarkPingPong(b *testing.B) {
	for _, kind := range []string{"own", "lock"} {
		b.Run(kind, func(b *testing.B) {
			s := newSetup(b, kind, 0)
			child := proctest.Start(b, "pingpong", s.path, s.kind, fmt.Sprint(b.N))
			waitFor(b, "B waiting", 20*time.Second, func() bool { return s.c.State().Waiters == 1 })
			rt := make([]time.Duration, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			before := s.c.Stats()
			start := time.Now()
			if err := pingATimed(s, b.N, rt); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			after := s.c.Stats()
			child.WaitOK()
			b.ReportMetric(float64(el.Nanoseconds())/float64(b.N), "ns/roundtrip")
			// A's sleeps in Wait and wakes made by its Notify, per round
			// trip: 0 while both sides spin, 1 each when every handoff
			// goes through the kernel. Load-independent, unlike the times.
			b.ReportMetric(float64(after.Waits-before.Waits)/float64(b.N), "sleeps/roundtrip")
			b.ReportMetric(float64(after.Wakes-before.Wakes)/float64(b.N), "wakes/roundtrip")
			// The median shows the spinning handoff; the mean includes the
			// round trips where a peer was descheduled and one side slept.
			if b.N > 1 {
				rt = rt[1:] // the first is the time to the first Notify
				slices.Sort(rt)
				b.ReportMetric(float64(rt[len(rt)/2].Nanoseconds()), "p50-ns/roundtrip")
				b.ReportMetric(float64(rt[len(rt)*99/100].Nanoseconds()), "p99-ns/roundtrip")
			}
		})
	}
}
