//go:build amd64 || arm64

package rlock

import "unsafe"

const haveGetg = true

// getg returns the runtime's g of the calling goroutine.
//
//go:noescape
func getg() unsafe.Pointer
