// Package spinfloor is the spin floor of a waiter whose partner is a
// process that answers within microseconds when it runs (a Condition or
// Event ping-pong): the number of futex.Spin iterations to make before
// sleeping, whatever the process's adaptive budget says, and when to make
// none.
//
// Why a floor: futex.Spin's budget halves at each spin that ends in
// sleep, down to about half a microsecond, far below what waking a
// sleeper costs (about 10 µs on a 2-vCPU VM: a futex wake, the sleeper's
// thread scheduled again, its goroutine run). Once one side of a
// ping-pong slept, the other ran out of spin before it answered and slept
// in turn, and the pair stayed in the kernel for good: a wake and context
// switches per round. A floor of about that cost lets a pair come back
// to spinning, and spinning never wastes much more than sleeping would.
//
// Why not always: when the partner waits for this CPU (more runnable
// threads than CPUs), the floor's spin only delays it. After Off waits in
// a row, in this process, whose spin ran out, the floor applies to one
// wait in Probe only, enough for a pair on idle CPUs to find spinning
// again within a few dozen rounds; the first wait whose spin succeeds
// restores it. On one CPU (runtime.NumCPU follows the affinity mask) there
// is no floor: futex.Spin yields instead of pausing there.
package spinfloor

import (
	"runtime"
	"sync/atomic"

	"github.com/mpipc/mpipc/futex"
)

const (
	// Spins is the floor: 160 futex.Spin iterations, about 10 µs (the
	// adaptive budget's ceiling).
	Spins = 160
	// Off is the number of waits in a row that ran out of spin after
	// which the floor applies to one wait in Probe only.
	Off = 8
	// Probe: with the floor off, every Probe-th wait still spins it.
	Probe = 8
)

var (
	multicore = runtime.NumCPU() > 1
	fails     atomic.Uint32 // waits in a row whose spin ran out
)

// Floor returns the number of iterations a wait that starts now spins
// before the adaptive budget decides: Spins or 0.
func Floor() int {
	if !multicore {
		return 0
	}
	if f := fails.Load(); f >= Off && f%Probe != 0 {
		return 0
	}
	return Spins
}

// Spin reports whether a waiter in its k-th spin iteration, with floor
// from Floor, spins once more (and has spun): the first floor iterations
// are active (futex.Spin(0) pauses on a multicore machine), then
// futex.Spin(k) decides.
func Spin(k, floor int) bool { return k < floor && futex.Spin(0) || futex.Spin(k) }

// Done records how a wait's spin ended, for the floor and for
// futex.Spin's adaptive budget (futex.SpinDone): ok when the waiter got
// what it waited for while spinning, false when it goes to sleep.
func Done(ok bool) {
	futex.SpinDone(ok)
	if ok {
		if fails.Load() != 0 {
			fails.Store(0)
		}
		return
	}
	fails.Add(1)
}
