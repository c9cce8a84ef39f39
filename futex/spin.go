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
// The budget adapts per process: a spin that ended in success (the caller
// got what it waited for without sleeping) doubles the active limit, up to
// maxActive; a spin that ran out halves it, down to minActive. So a process
// whose peer is usually running spins up to about 10 µs before it sleeps,
// and one whose peer is usually asleep spends about half a microsecond.
//
// Halving alone is a trap for two processes that wait on each other (a
// ping-pong, a request and its response): once both budgets are short,
// each answer comes a wake-up later (tens of µs on a VM), after the
// other's short spin gave up, so no spin succeeds and both sleep on every
// message for good. Measured: W3 started with both at minActive stayed at
// a median of 5–9 µs a round trip in 6 of 8 runs, against 0.35 µs. So
// every probeEvery-th spin below the full budget probes with the full
// budget, and a probe that succeeds restores it.
const (
	iterNs     = 60
	maxActive  = 160
	minActive  = 8
	passive    = 4
	probeEvery = 8
)

var (
	activeLimit atomic.Int32
	spins       atomic.Uint32 // spins ended (SpinDone), to pick probes
	multicore   = runtime.NumCPU() > 1
	spinPauses  uint32 // PAUSEs per active iteration, from calibrate
)

func init() {
	activeLimit.Store(maxActive / 2)
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
	lim := int(activeLimit.Load())
	if lim < maxActive && spins.Load()%probeEvery == 0 {
		lim = maxActive
	}
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

// SpinDone tells the adaptive budget how a spin ended: ok is true when the
// caller got what it waited for while spinning.
func SpinDone(ok bool) {
	l := activeLimit.Load()
	if ok && l >= maxActive {
		return // the common case of a busy peer: no shared write
	}
	probe := spins.Add(1)%probeEvery == 1 // it started at 0 mod probeEvery
	if ok {
		if probe {
			activeLimit.CompareAndSwap(l, maxActive)
		} else {
			activeLimit.CompareAndSwap(l, min(l*2, maxActive))
		}
	} else if l > minActive {
		activeLimit.CompareAndSwap(l, max(l/2, minActive))
	}
}
