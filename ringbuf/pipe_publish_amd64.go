//go:build amd64 && !race

package ringbuf

// spscPlainStore: a pipe ring's publishing store may be a plain MOV (a
// store-release under x86's total store order) instead of an XCHG, when
// its sleepers use membarrier (see spscShared).
const spscPlainStore = true
