package bench

import (
	"math/bits"
	"sync"
	"time"

	"github.com/mpipc/mpipc/dict"
)

// W10: a shared dictionary of 1,024 int64 keys → int64 values, pre-filled
// with init(k) = −(k+1); Procs processes × n ops, a fixed 90 % get / 10 %
// set mix, exactly as the anchors' c/w10_dict.c: op i of process p has
// j = i·P + p, key = ((j·2654435761) mod 2³²) >> 22, and sets key := j
// when i mod 10 = 0, else gets key. Every value read is checked inside the
// timed loop (never a value not set on that key, never older than the
// reader's own last set or than another process's value it read before,
// never init(k) once a set was made or seen); the parent checks the exact
// get/set counts per process and that every key ends with init(k) if
// nobody set it, else the last value one of the processes set on it.
//
// mpipc-dict is a dict.Dict[int64, int64] of capacity 1,024 (16 stripes,
// as the C map). go-rwmutex-map is a Go map under a sync.RWMutex and
// go-sync-map a sync.Map, both in one process with a goroutine per party:
// the floor of an in-process map, not a competitor.
const (
	w10Keys = 1024
	w10None = -1
)

func w10Key(j uint64) int64 { return int64(uint32(j*2654435761) >> 22) }

func w10Init(k int64) int64 { return -(k + 1) }

// w10Checker is one party's view for the per-read check.
type w10Checker struct {
	p, procs, shift uint64
	n               uint64
	lastw, lasto    [w10Keys]int64
	gets, sets      uint64
}

func newW10Checker(p, procs int, n int64) *w10Checker {
	c := &w10Checker{p: uint64(p), procs: uint64(procs), shift: uint64(bits.TrailingZeros(uint(procs))), n: uint64(n)}
	for k := range c.lastw {
		c.lastw[k], c.lasto[k] = w10None, w10None
	}
	return c
}

func (c *w10Checker) read(i uint64, k, v int64, ok bool) error {
	c.gets++
	if !ok {
		return mismatch("proc %d op %d: key %d missing", c.p, i, k)
	}
	if v < 0 {
		if v != w10Init(k) || c.lastw[k] != w10None || c.lasto[k] != w10None {
			return mismatch("proc %d op %d key %d read %d: not the initial value, or the initial value after a set", c.p, i, k, v)
		}
		return nil
	}
	vi := uint64(v) >> c.shift
	if vi >= c.n || vi%10 != 0 || w10Key(uint64(v)) != k {
		return mismatch("proc %d op %d key %d read %d: never set on this key", c.p, i, k, v)
	}
	if uint64(v)&(c.procs-1) == c.p {
		if v != c.lastw[k] {
			return mismatch("proc %d op %d key %d read %d: not my last set", c.p, i, k, v)
		}
	} else {
		if v < c.lasto[k] {
			return mismatch("proc %d op %d key %d read %d: older than a value read before", c.p, i, k, v)
		}
		c.lasto[k] = v
	}
	return nil
}

func (c *w10Checker) wrote(k, j int64) {
	c.lastw[k] = j
	c.sets++
}

// w10Final checks the counts each party stored in result words 2p, 2p+1
// and the final state read with get.
func w10Final(sh *shared, n int64, procs int, get func(int64) (int64, bool)) error {
	wantSets := uint64((n + 9) / 10)
	for p := range procs {
		g, s := *sh.result(2 * p), *sh.result(2*p + 1)
		if s != wantSets || g != uint64(n)-wantSets {
			return mismatch("OP COUNT proc %d: gets %d sets %d, want %d / %d", p, g, s, uint64(n)-wantSets, wantSets)
		}
	}
	last := make([][w10Keys]int64, procs)
	for p := range procs {
		for k := range last[p] {
			last[p][k] = w10None
		}
		for i := int64(0); i < n; i += 10 {
			j := uint64(i)*uint64(procs) + uint64(p)
			last[p][w10Key(j)] = int64(j)
		}
	}
	for k := range int64(w10Keys) {
		v, ok := get(k)
		if !ok {
			return mismatch("FINAL STATE: key %d missing", k)
		}
		good, written := false, false
		for p := range procs {
			if last[p][k] != w10None {
				written = true
				good = good || v == last[p][k]
			}
		}
		if !written {
			good = v == w10Init(k)
		}
		if !good {
			return mismatch("FINAL STATE: key %d holds %d", k, v)
		}
	}
	return nil
}

func init() {
	size, err := dict.SizeOf[int64, int64](w10Keys, nil)
	if err != nil {
		panic("bench: " + err.Error())
	}
	for _, procs := range []int{2, 1} {
		wl := "W10"
		if procs == 1 {
			wl = "W10-1p"
		}
		addProc(procCase{
			Workload: wl, System: "mpipc-dict", BaseN: 30_000_000 * int64(3-procs), Procs: procs,
			Size: size,
			Init: func(mem []byte) error {
				d, err := dict.Init[int64, int64](mem[:size], w10Keys, nil)
				if err != nil {
					return err
				}
				for k := range int64(w10Keys) {
					if err := d.Set(k, w10Init(k)); err != nil {
						return err
					}
				}
				return nil
			},
			Worker: func(w *Worker) (func() error, error) {
				d, err := dict.Attach[int64, int64](w.Objects()[:size], nil)
				if err != nil {
					return nil, err
				}
				c := newW10Checker(w.Idx, w.Procs, w.N)
				return func() error {
					P, p := uint64(w.Procs), uint64(w.Idx)
					for i := uint64(0); i < uint64(w.N); i++ {
						j := i*P + p
						k := w10Key(j)
						if i%10 == 0 {
							if err := d.Set(k, int64(j)); err != nil {
								return err
							}
							c.wrote(k, int64(j))
							continue
						}
						v, ok := d.Get(k)
						if err := c.read(i, k, v, ok); err != nil {
							return err
						}
					}
					*w.Result(2 * w.Idx) = c.gets
					*w.Result(2*w.Idx + 1) = c.sets
					return nil
				}, nil
			},
			Check: func(sh *shared, n int64) error {
				d, err := dict.Attach[int64, int64](sh.objects()[:size], nil)
				if err != nil {
					return err
				}
				if d.Len() != w10Keys {
					return mismatch("MAP SIZE %d != %d", d.Len(), w10Keys)
				}
				return w10Final(sh, n, procs, d.Get)
			},
			Metrics: opsPerSec(int64(procs)),
		})
	}

	// In-process peers: the parties are goroutines of one worker.
	type kv struct {
		get func(int64) (int64, bool)
		set func(k, v int64)
	}
	peers := []struct {
		system string
		make   func() kv
	}{
		{"go-rwmutex-map", func() kv {
			var mu sync.RWMutex
			m := make(map[int64]int64, w10Keys)
			return kv{
				get: func(k int64) (int64, bool) { mu.RLock(); v, ok := m[k]; mu.RUnlock(); return v, ok },
				set: func(k, v int64) { mu.Lock(); m[k] = v; mu.Unlock() },
			}
		}},
		{"go-sync-map", func() kv {
			var m sync.Map
			return kv{
				get: func(k int64) (int64, bool) {
					v, ok := m.Load(k)
					if !ok {
						return 0, false
					}
					return v.(int64), true
				},
				set: func(k, v int64) { m.Store(k, v) },
			}
		}},
	}
	for _, pr := range peers {
		for _, procs := range []int{2, 1} {
			wl := "W10"
			if procs == 1 {
				wl = "W10-1p"
			}
			addProc(procCase{
				Workload: wl, System: pr.system, BaseN: 10_000_000 / int64(procs), Procs: 1,
				Worker: func(w *Worker) (func() error, error) {
					m := pr.make()
					for k := range int64(w10Keys) {
						m.set(k, w10Init(k))
					}
					return func() error {
						err := inProcess(w, procs, func(w *Worker) error {
							c := newW10Checker(w.Idx, w.Procs, w.N)
							P, p := uint64(w.Procs), uint64(w.Idx)
							for i := uint64(0); i < uint64(w.N); i++ {
								j := i*P + p
								k := w10Key(j)
								if i%10 == 0 {
									m.set(k, int64(j))
									c.wrote(k, int64(j))
									continue
								}
								v, ok := m.get(k)
								if err := c.read(i, k, v, ok); err != nil {
									return err
								}
							}
							*w.Result(2 * w.Idx) = c.gets
							*w.Result(2*w.Idx + 1) = c.sets
							return nil
						})
						if err != nil {
							return err
						}
						return w10Final(w.sh, w.N, procs, m.get)
					}, nil
				},
				Metrics: func(el time.Duration, n int64, _ *shared) []Result {
					return []Result{{Metric: "ops_per_s", Value: float64(int64(procs)*n) / el.Seconds(), N: int64(procs) * n, Procs: procs}}
				},
			})
		}
	}
}
