//go:build amd64 && !race

package ringbuf

// qStoreHint stores v into a word that is only a hint (a head or tail
// position, a slot's owner record): readers load it atomically, but no
// ordering with other memory is needed, and a late store costs a reader a
// longer scan, never a wrong answer.
//
// On amd64 it is one aligned MOV, which is atomic (never torn) and, under
// x86's total store order, a release store. Go's atomic.StoreUint64 is an
// XCHG, a locked instruction and a full barrier: on the uncontended Put
// and Get it cost as much as the claim's compare-and-swap.
//
//go:noescape
func qStoreHint(p *uint64, v uint64)
