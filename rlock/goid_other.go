//go:build !amd64 && !arm64

package rlock

import (
	"unsafe"

	"github.com/mpipc/mpipc/internal/release"
)

const haveGetg = false

func getg() unsafe.Pointer { return nil }

func goidAt(off uintptr) uint64 { return *(*uint64)(unsafe.Add(getg(), off)) }

func storeGoidAt(p *uint64, off uintptr) { release.Store64(p, goidAt(off)) }
