package stats

import (
	"runtime"
	"sync"
	"weak"
)

// Object is what [Snapshot] reports for one object: the sum of the
// counters of this process's live handles on it.
type Object struct {
	Kind    string `json:"kind"`
	Handles int    `json:"handles"` // live handles of this process on the object
	Stats
}

type entry struct {
	segment, name, kind string
}

// registry maps each published handle's counters, held weakly, to the
// object they count. It is empty, and costs nothing, until the first
// Publish.
var registry struct {
	mu sync.Mutex
	m  map[weak.Pointer[Counters]]entry
}

// Publish registers c, the counters of a handle on the object name of
// kind kind in the segment at path segment, for [Snapshot]. It holds c
// weakly: when the handle holding c is garbage-collected, its entry goes
// (a cleanup removes it). Every Create and Open of mpipc calls it; it is
// not on any fast path.
func Publish(segment, name, kind string, c *Counters) {
	wp := weak.Make(c)
	registry.mu.Lock()
	if registry.m == nil {
		registry.m = make(map[weak.Pointer[Counters]]entry)
	}
	_, again := registry.m[wp]
	registry.m[wp] = entry{segment: segment, name: name, kind: kind}
	registry.mu.Unlock()
	if !again {
		runtime.AddCleanup(c, forget, wp)
	}
}

func forget(wp weak.Pointer[Counters]) {
	registry.mu.Lock()
	delete(registry.m, wp)
	registry.mu.Unlock()
}

// Snapshot returns, per segment path and object name, the summed
// counters of this process's live published handles. Objects this
// process has no live handle on are absent.
func Snapshot() map[string]map[string]Object {
	out := make(map[string]map[string]Object)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for wp, e := range registry.m {
		c := wp.Value()
		if c == nil {
			continue // collected; its cleanup is on its way
		}
		objs := out[e.segment]
		if objs == nil {
			objs = make(map[string]Object)
			out[e.segment] = objs
		}
		o := objs[e.name]
		o.Kind = e.kind
		o.Handles++
		o.Stats = o.Stats.Add(c.Load())
		objs[e.name] = o
	}
	return out
}
