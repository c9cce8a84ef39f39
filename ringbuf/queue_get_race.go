//go:build race

package ringbuf

// qOptimisticGet is false under the race detector. The optimistic copy of
// takeGet may overlap a producer's write of the next lap when another
// consumer took the message meanwhile; the copy is then discarded (the
// CAS fails), but the detector, which does not know that, would report
// it. Race builds claim the slot before copying, as Borrow does.
const qOptimisticGet = false
