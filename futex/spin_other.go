//go:build !amd64 && !arm64

package futex

import "sync/atomic"

// spinWord is what the portable procyield reads: an atomic load the
// compiler cannot drop, costing a few cycles and no bus traffic.
var spinWord atomic.Uint32

// procyield spins cycles iterations without a CPU hint instruction, on
// architectures without an assembly version; calibrate sizes the spin by
// the loop's measured cost, so the budget in time is the same.
func procyield(cycles uint32) {
	for range cycles {
		spinWord.Load()
	}
}
