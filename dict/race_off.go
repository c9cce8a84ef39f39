//go:build !race

package dict

// raceEnabled reports whether the race detector is on: then writers store
// entry words with atomic stores, which the detector understands, instead
// of plain ones (see storeWord).
const raceEnabled = false
