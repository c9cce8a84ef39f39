//go:build !race

package value

// raceEnabled reports whether the race detector is on: then writers copy
// into a slot with atomic stores, which the detector understands, instead
// of a plain copy (see copyIn).
const raceEnabled = false
