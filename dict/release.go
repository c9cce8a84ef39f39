//go:build !amd64 || race

package dict

import "sync/atomic"

// storeRelease stores v at p with release ordering (see the amd64
// version). On arm64 an atomic store is a store-release (STLR), already
// cheap; under the race detector it must be an atomic the detector sees.
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
