//go:build amd64 || arm64

package rlock

import "unsafe"

const haveGetg = true

// getg returns the runtime's g of the calling goroutine.
//
//go:noescape
func getg() unsafe.Pointer

// goidAt returns the 64-bit word at offset off of the calling goroutine's
// g (off must be goidOff, found by calibrate).
func goidAt(off uintptr) uint64

// storeRelease64 stores v at p atomically with release order: stores
// before it are visible before it. It is enough for the owner and level
// words, which only their owner writes while it holds the lock word (see
// the layout in rlock.go), and cheaper than atomic.StoreUint64's full
// fence.
//
//go:noescape
func storeRelease64(p *uint64, v uint64)

// storeRelease32 is storeRelease64 for a 32-bit word.
//
//go:noescape
func storeRelease32(p *uint32, v uint32)

// storeGoidAt is storeRelease64(p, goidAt(off)) in one call.
//
//go:noescape
func storeGoidAt(p *uint64, off uintptr)
