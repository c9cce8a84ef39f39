//go:build !amd64 || race

package ringbuf

// spscPlainStore: a pipe ring publishes with Go's atomic store. On arm64
// that is a store-release (STLR), which a later load-acquire (LDAR) cannot
// pass, so it is already as cheap as a plain store and needs no sleeper's
// membarrier; under the race detector the store must be one it sees.
const spscPlainStore = false
