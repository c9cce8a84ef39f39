//go:build !amd64 || race

package ringbuf

import "sync/atomic"

// qStoreHint stores v into a word that is only a hint (a head or tail
// position, a slot's owner record): readers load it atomically, but no
// ordering with other memory is needed, and a late store costs a reader a
// longer scan, never a wrong answer. On arm64 an atomic store is a
// store-release (STLR), already cheap; under the race detector it must be
// an atomic the detector sees.
func qStoreHint(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
