package futex

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Spin budget, in iterations of [Spin]. Each active iteration executes
// enough PAUSE (YIELD) instructions to last about iterNs nanoseconds (the
// instruction's cost varies from ~10 to ~140 cycles between CPUs, so it is
// calibrated once at start); passive iterations give the processor away
// with runtime.Gosched.
//
// The budget adapts per process. While spins succeed (the caller got what
// it waited for without sleeping), every spin may run the full budget,
// maxActive iterations, about 10 µs: about what a sleep and a wake cost on
// the machines we measure, so spinning it never wastes much more than
// sleeping would. After offAfter spins in a row that ran out, the partner
// is taken to be asleep or waiting for this CPU, and a spin runs minActive
// iterations (about half a microsecond), but for one in probeEvery, which
// still runs the full budget; the first spin that succeeds restores it.
//
// The probe is what lets two processes that wait on each other (a
// ping-pong, a request and its response) leave the sleep-every-message
// mode: once both spin short, each answer comes a wake-up later (tens of
// µs on a VM) than the other's short spin lasts, so no short spin ever
// succeeds. With a budget that only halved after a failure and doubled
// after a success, W3 started with both processes at the floor stayed at
// a median of 5–9 µs a round trip in 8 of 12 runs, against 0.3 µs; a
// Condition ping-pong slept on 97% of its waits.
const (
	iterNs     = 60
	maxActive  = 160
	minActive  = 8
	passive    = 4
	offAfter   = 8
	probeEvery = 8
)

var (
	fails      atomic.Uint32 // spins in a row, in this process, that ran out
	multicore  = runtime.NumCPU() > 1
	spinPauses uint32 // PAUSEs per active iteration, from calibrate
)

func init() {
	spinPauses = calibrate()
}

// calibrate measures the cost of the PAUSE instruction and returns how many
// make one active spin iteration.
func calibrate() uint32 {
	const probe = 2000
	best := time.Duration(1 << 62)
	for i := 0; i < 3; i++ {
		t := time.Now()
		procyield(probe)
		if d := time.Since(t); d < best {
			best = d
		}
	}
	perPause := float64(best.Nanoseconds()) / probe
	n := uint32(iterNs / max(perPause, 0.5))
	return min(max(n, 1), 300)
}

// Spin is the bounded spin before sleeping. The caller counts iterations
// from 0 and stops spinning when Spin returns false:
//
//	for i := 0; futex.Spin(i); i++ {
//		if tryAcquire() {
//			futex.SpinDone(true)
//			return
//		}
//	}
//	futex.SpinDone(false)
//	// register as a waiter and sleep
func Spin(iter int) bool {
	lim := limit()
	switch {
	case iter < lim && multicore:
		procyield(spinPauses)
		return true
	case iter < lim+passive:
		runtime.Gosched()
		return true
	}
	return false
}

// limit is the number of active iterations of a spin that starts now.
func limit() int {
	if f := fails.Load(); f >= offAfter && (f%probeEvery != 0 || !multicore) {
		// No probes on one CPU: a spin there yields to the goroutines
		// of this process, and a partner in another process runs only
		// once this one sleeps.
		return minActive
	}
	return maxActive
}

// SpinDone tells the adaptive budget how a spin ended: ok is true when the
// caller got what it waited for while spinning. A success writes nothing
// shared unless spins had failed before it.
func SpinDone(ok bool) {
	if ok {
		if fails.Load() != 0 {
			fails.Store(0)
		}
		return
	}
	fails.Add(1)
}

// Multicore reports whether the process may run on more than one CPU (at
// start-up, by its affinity mask): on one CPU a spin only delays the
// partner it waits for, and [Spin] yields instead of pausing.
func Multicore() bool { return multicore }
