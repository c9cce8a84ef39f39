package dict

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mpipc/mpipc/shm"
)

// Summary describes a Dict or Bytes found by name, without knowing its
// key and value types: what `mpipc stat` shows.
type Summary struct {
	State
	Bytes      bool // the bytes form
	KeyBytes   int  // size of K, or the longest key
	ValueBytes int  // size of V, or the longest value
	// Keys holds up to the maxKeys first keys of a bytes form, in table
	// order, each cut to maxKeyLen bytes; MoreKeys counts the others.
	Keys     [][]byte
	MoreKeys int
}

// Inspect finds the Dict or Bytes named name in seg and describes it. It
// takes no lock and writes nothing: keys that change while it reads them
// are left out.
func Inspect(seg *shm.Segment, name string, maxKeys, maxKeyLen int) (Summary, error) {
	objs, err := seg.Objects()
	var fp uint64
	found := false
	for _, o := range objs {
		if o.Name == name && o.Kind == shm.KindDict {
			fp, found = o.Fingerprint, true
		}
	}
	if !found {
		if err == nil {
			err = shm.ErrNotExist
		}
		return Summary{}, fmt.Errorf("dict: inspecting %q: %w", name, err)
	}
	mem, err := seg.Lookup(shm.Spec{Name: name, Kind: shm.KindDict, KindVersion: Version, Fingerprint: fp})
	if err != nil {
		return Summary{}, fmt.Errorf("dict: inspecting %q: %w", name, err)
	}
	defer seg.Release(mem)
	g, err := readGeometry(mem)
	if err != nil {
		return Summary{}, err
	}
	var t table
	t.setup(mem, g, nil, 0)
	sum := Summary{State: t.state(), Bytes: g.varKey, KeyBytes: int(g.keyBytes), ValueBytes: int(g.valBytes)}
	if !g.varKey {
		return sum, nil
	}
	for s := range t.nstripes {
		reg := t.active(s)
		for i := range t.slots {
			ent := t.entry(reg, i)
			c := atomic.LoadUint64(ctlOf(ent))
			if state(c) != stLive {
				continue
			}
			if len(sum.Keys) >= maxKeys {
				sum.MoreKeys++
				continue
			}
			kp := t.keyOf(ent)
			n := min(atomic.LoadUint64((*uint64)(kp)), t.keyBytes)
			k := make([]byte, (n+7)&^7)
			copyOut(k, unsafe.Add(kp, 8))
			if atomic.LoadUint64(ctlOf(ent)) != c {
				continue
			}
			sum.Keys = append(sum.Keys, k[:min(int(n), maxKeyLen)])
		}
	}
	return sum, nil
}
