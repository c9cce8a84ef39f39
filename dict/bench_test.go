//go:build linux

package dict

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

// The benchmarks compare a Dict[int64, int64] of 1,024 keys with Go's
// in-process maps (sync.Map, and a map under a sync.RWMutex): uncontended
// Get and Set, and W10's 90 % get / 10 % set mix with one and two
// processes (goroutines for the in-process peers).

const benchKeys = 1024

// benchKey spreads op i over the keys as W10 does.
func benchKey(i int) int64 { return int64(uint32(uint64(i)*2654435761) >> 22) }

func benchDict(tb testing.TB) *Dict[int64, int64] {
	d, _ := newDict[int64, int64](tb, benchKeys, nil)
	for k := range int64(benchKeys) {
		if err := d.Set(k, -(k + 1)); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

func BenchmarkGetUncontended(b *testing.B) {
	d := benchDict(b)
	b.ReportAllocs()
	var sink int64
	i := 0
	for b.Loop() {
		v, _ := d.Get(benchKey(i))
		sink += v
		i++
	}
	_ = sink
}

func BenchmarkGetMissUncontended(b *testing.B) {
	d := benchDict(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Get(benchKeys + benchKey(i))
		i++
	}
}

func BenchmarkSetUncontended(b *testing.B) {
	d := benchDict(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Set(benchKey(i), int64(i))
		i++
	}
}

func BenchmarkUpdateUncontended(b *testing.B) {
	d := benchDict(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Update(benchKey(i), func(old int64, ok bool) (int64, bool) { return old + 1, true })
		i++
	}
}

func BenchmarkBytesGetUncontended(b *testing.B) {
	n, _ := SizeOfBytes(benchKeys, 16, 16, nil)
	bd, _ := InitBytes(alignedMem(n), benchKeys, 16, 16, nil)
	keys := make([][]byte, benchKeys)
	for k := range keys {
		keys[k] = []byte("user:" + strconv.Itoa(k))
		bd.Set(keys[k], []byte("some value"))
	}
	buf := make([]byte, 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bd.Get(keys[benchKey(i)], buf)
		i++
	}
}

func BenchmarkBytesSetUncontended(b *testing.B) {
	n, _ := SizeOfBytes(benchKeys, 16, 16, nil)
	bd, _ := InitBytes(alignedMem(n), benchKeys, 16, 16, nil)
	keys := make([][]byte, benchKeys)
	for k := range keys {
		keys[k] = []byte("user:" + strconv.Itoa(k))
	}
	val := []byte("some value")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bd.Set(keys[benchKey(i)], val)
		i++
	}
}

// ---- in-process peers ----

type rwMap struct {
	mu sync.RWMutex
	m  map[int64]int64
}

func (r *rwMap) get(k int64) (int64, bool) {
	r.mu.RLock()
	v, ok := r.m[k]
	r.mu.RUnlock()
	return v, ok
}

func (r *rwMap) set(k, v int64) {
	r.mu.Lock()
	r.m[k] = v
	r.mu.Unlock()
}

func newRWMap() *rwMap {
	r := &rwMap{m: make(map[int64]int64, benchKeys)}
	for k := range int64(benchKeys) {
		r.m[k] = -(k + 1)
	}
	return r
}

func newSyncMap() *sync.Map {
	var m sync.Map
	for k := range int64(benchKeys) {
		m.Store(k, -(k + 1))
	}
	return &m
}

func BenchmarkPeerSyncMapGet(b *testing.B) {
	m := newSyncMap()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Load(benchKey(i))
		i++
	}
}

func BenchmarkPeerSyncMapSet(b *testing.B) {
	m := newSyncMap()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Store(benchKey(i), int64(i))
		i++
	}
}

func BenchmarkPeerRWMutexMapGet(b *testing.B) {
	m := newRWMap()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.get(benchKey(i))
		i++
	}
}

func BenchmarkPeerRWMutexMapSet(b *testing.B) {
	m := newRWMap()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.set(benchKey(i), int64(i))
		i++
	}
}

// ---- 90/10 get/set, 1 and 2 parties ----

// mix runs n ops of party p of procs: W10's schedule.
func mix(n, p, procs int, get func(int64) (int64, bool), set func(k, v int64)) {
	for i := range n {
		j := i*procs + p
		k := benchKey(j)
		if i%10 == 0 {
			set(k, int64(j))
		} else {
			get(k)
		}
	}
}

func reportOps(b *testing.B, ops int, el time.Duration) {
	b.ReportMetric(float64(ops)/el.Seconds(), "ops/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(ops), "ns/op")
}

func BenchmarkMix90_10(b *testing.B) {
	b.Run("dict/1proc", func(b *testing.B) {
		d := benchDict(b)
		b.ReportAllocs()
		b.ResetTimer()
		t0 := time.Now()
		mix(b.N, 0, 1, d.Get, func(k, v int64) { d.Set(k, v) })
		reportOps(b, b.N, time.Since(t0))
	})
	b.Run("dict/2proc", func(b *testing.B) {
		name := proctest.TempName(b)
		seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer seg.Close()
		d, err := Create[int64, int64](seg, "bench", benchKeys, nil)
		if err != nil {
			b.Fatal(err)
		}
		for k := range int64(benchKeys) {
			d.Set(k, -(k + 1))
		}
		b.ReportAllocs()
		c := proctest.Start(b, "mixer", name, strconv.Itoa(b.N))
		c.Expect(proctest.Ready, 0)
		b.ResetTimer()
		t0 := time.Now()
		mix(b.N, 0, 2, d.Get, func(k, v int64) { d.Set(k, v) })
		own := time.Since(t0)
		var other time.Duration
		out := strings.Fields(c.WaitOK())
		fmt.Sscan(out[len(out)-1], &other)
		reportOps(b, 2*b.N, max(own, other))
	})
	type peer struct {
		name string
		get  func(int64) (int64, bool)
		set  func(k, v int64)
	}
	sm, rw := newSyncMap(), newRWMap()
	for _, peer := range []peer{
		{"syncmap", func(k int64) (int64, bool) { v, ok := sm.Load(k); return v.(int64), ok }, func(k, v int64) { sm.Store(k, v) }},
		{"rwmutexmap", rw.get, rw.set},
	} {
		for _, procs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%dgoroutine", peer.name, procs), func(b *testing.B) {
				b.ReportAllocs()
				var wg sync.WaitGroup
				t0 := time.Now()
				for p := range procs {
					wg.Add(1)
					go func() { defer wg.Done(); mix(b.N, p, procs, peer.get, peer.set) }()
				}
				wg.Wait()
				reportOps(b, procs*b.N, time.Since(t0))
			})
		}
	}
}

// roleMixer: SEG N — party 1 of W10's mix on the dict "bench"; prints its
// elapsed time in ns.
func roleMixer(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	d, err := Open[int64, int64](seg, "bench", nil)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	proctest.SignalReady()
	t0 := time.Now()
	mix(n, 1, 2, d.Get, func(k, v int64) { d.Set(k, v) })
	fmt.Println(int64(time.Since(t0)))
	return nil
}
