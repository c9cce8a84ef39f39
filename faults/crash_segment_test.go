//go:build linux

package faults_test

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mpipc/mpipc/shm"
)

// The segment: workers allocate small named objects (Alloc, under the
// robust segment lock, then their initializer) and look their own up. A
// worker killed inside Alloc must not wedge the segment lock or leave the
// directory corrupt: at every pause the directory lists without error, and
// every object whose Alloc returned is ready, with what its initializer
// wrote. When the directory is full, workers only look up.

const (
	segAttempt = 1 // seq+1 of the Alloc begun
	segDone    = 2 // Allocs returned nil
)

func segObjName(slot int, seq uint64) string { return fmt.Sprintf("w%d-%d", slot, seq) }

func init() {
	addCrashKind(&crashKind{
		name:       "segment",
		workers:    []string{"w", "w", "w", "w"},
		maxObjects: shm.MaxMaxObjects,
		// Per entry: 96 bytes of directory, a row of the attach table
		// (one bit per registry slot), and a 64-byte object.
		extra: func(int) int { return shm.MaxMaxObjects * (96 + shm.DefaultMaxProcs/8 + 64) },
		setup: func(h *harness) {},
		worker: func(w *wctx) error {
			ready()
			full := false
			for seq := uint64(0); !w.stopped(); seq++ {
				if !full {
					st(w.s(segAttempt), seq+1)
					w.blocking(true)
					_, err := w.seg.Alloc(shm.Spec{Name: segObjName(w.slot, seq), Kind: shm.KindBytes, KindVersion: 1, Size: 64},
						func(m []byte) error {
							binary.LittleEndian.PutUint64(m, uint64(w.slot)<<32|seq)
							return nil
						})
					w.blocking(false)
					switch {
					case err == nil:
						st(w.s(segDone), seq+1)
					case errors.Is(err, shm.ErrFull):
						full = true
						st(w.s(segAttempt), seq)
					default:
						return fmt.Errorf("Alloc: %w", err)
					}
				}
				if d := ld(w.s(segDone)); d > 0 {
					s := uint64(w.rng.Int64N(int64(d)))
					m, err := w.seg.Lookup(shm.Spec{Name: segObjName(w.slot, s), Kind: shm.KindBytes, KindVersion: 1})
					if err != nil {
						w.violation("Lookup of my object %d after its Alloc returned: %v", s, err)
					} else if got := binary.LittleEndian.Uint64(m); got != uint64(w.slot)<<32|s {
						w.violation("object %d holds %#x", s, got)
					}
				}
				w.tick()
			}
			return nil
		},
		check: func(h *harness, final bool) {
			objs, err := h.seg.Objects()
			if err != nil {
				h.t.Errorf("segment: directory after a kill: %v", err)
			}
			if ie := h.seg.Info().Err; ie != nil {
				h.t.Errorf("segment: Info: %v", ie)
			}
			ready := map[string]bool{}
			for _, o := range objs {
				ready[o.Name] = o.Ready
			}
			for _, w := range h.all {
				done := ld(h.c.s(w.slot, segDone))
				for s := uint64(0); s < done; s++ {
					if !ready[segObjName(w.slot, s)] {
						h.t.Errorf("segment: object %s allocated but not ready in the directory", segObjName(w.slot, s))
						return
					}
				}
			}
			if final {
				h.t.Logf("segment: %d objects in the directory after %d kills", len(objs), h.kills)
			}
		},
	})
}
