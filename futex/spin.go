package futex

import (
	"runtime"
	"sync/atomic"
)

// Spin budget, in iterations of [Spin]. Each active iteration executes
// spinPauses PAUSE (YIELD) instructions, about 0.1-0.5 µs; passive
// iterations give the processor away with runtime.Gosched.
//
// The budget adapts per process: a spin that ended in success (the caller
// got what it waited for without sleeping) doubles the active limit, up to
// maxActive; a spin that ran out halves it, down to minActive. So a process
// whose peer is usually running spins up to about 10 µs before it sleeps,
// and one whose peer is usually asleep spends well under a microsecond.
const (
	spinPauses = 30
	maxActive  = 64
	minActive  = 4
	passive    = 4
)

var (
	activeLimit atomic.Int32
	multicore   = runtime.NumCPU() > 1
)

func init() { activeLimit.Store(maxActive / 2) }

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
	if ok {
		if l < maxActive {
			activeLimit.CompareAndSwap(l, min(l*2, maxActive))
		}
	} else if l > minActive {
		activeLimit.CompareAndSwap(l, max(l/2, minActive))
	}
}
