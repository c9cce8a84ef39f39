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

// storeGoidAt is release.Store64(p, goidAt(off)) in one call: a
// store with release order of the goroutine id.
//
//go:noescape
func storeGoidAt(p *uint64, off uintptr)
