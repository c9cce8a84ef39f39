//go:build !amd64 && !arm64

package rlock

import (
	"sync/atomic"
	"unsafe"
)

const haveGetg = false

func getg() unsafe.Pointer { return nil }

func goidAt(off uintptr) uint64 { return *(*uint64)(unsafe.Add(getg(), off)) }

func storeRelease64(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

func storeRelease32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

func storeGoidAt(p *uint64, off uintptr) { storeRelease64(p, goidAt(off)) }
