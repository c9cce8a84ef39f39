package rlock

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/mpipc/mpipc/internal/release"
)

// Goroutine identity.
//
// The RLock's owner is a process and a goroutine in it. A goroutine is
// named by its runtime id (goid), which the runtime never reuses within a
// process, so a goroutine that exited holding an RLock can never be
// mistaken for a later one.
//
// The fast way to read the goid: getg (two instructions of assembly per
// architecture) returns the runtime's g, and the goid is a uint64 field of
// it at an offset that depends on the Go version. Instead of a table of
// offsets per version, init finds the offset: it reads the goid the slow way
// (runtime.Stack) in several goroutines and keeps the one 8-byte-aligned
// offset in the first scanLimit bytes of g that holds it in all of them. If
// no such offset exists (a future runtime moved or widened the field, or
// getg is not available on this architecture), every call takes the slow
// way, which is correct but costs about a microsecond.

// scanLimit bounds the bytes of g read during calibration; the g struct is
// several hundred bytes long and the goid has always lived in its first 256.
const scanLimit = 256

var (
	goidOff  uintptr // offset of goid in g; 0 means "use slowGoid"
	goidOnce sync.Once
)

func init() { goidOnce.Do(calibrate) }

// goid returns the runtime id of the calling goroutine. It makes no
// syscall and does not allocate.
func goid() uint64 {
	if off := goidOff; off != 0 {
		return goidAt(off)
	}
	return slowGoid()
}

// slowGoid parses the id from the first line of the goroutine's stack
// trace, "goroutine 123 [running]:".
func slowGoid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	const prefix = len("goroutine ")
	var id uint64
	for i := prefix; i < n; i++ {
		c := buf[i]
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// calibrate finds goidOff, or leaves it 0.
func calibrate() {
	if !haveGetg {
		return
	}
	// Candidates from this goroutine, then narrowed by others.
	var cands []uintptr
	g, id := getg(), slowGoid()
	if g == nil || id == 0 {
		return
	}
	for off := uintptr(8); off < scanLimit; off += 8 {
		if *(*uint64)(unsafe.Add(g, off)) == id {
			cands = append(cands, off)
		}
	}
	const probes = 4
	for i := 0; i < probes && len(cands) > 0; i++ {
		ch := make(chan []uintptr)
		go func(cands []uintptr) {
			g, id := getg(), slowGoid()
			var keep []uintptr
			for _, off := range cands {
				if *(*uint64)(unsafe.Add(g, off)) == id {
					keep = append(keep, off)
				}
			}
			ch <- keep
		}(cands)
		cands = <-ch
	}
	if len(cands) == 1 {
		goidOff = cands[0]
	}
}

// storeGoid stores the calling goroutine's id at p with release order
// (see release.Store64).
func storeGoid(p *uint64) {
	if off := goidOff; off != 0 {
		storeGoidAt(p, off)
		return
	}
	release.Store64(p, slowGoid())
}
