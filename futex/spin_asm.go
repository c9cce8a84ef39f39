//go:build amd64 || arm64

package futex

// procyield executes the CPU's spin-wait hint (PAUSE, YIELD) cycles times.
//
//go:noescape
func procyield(cycles uint32)
