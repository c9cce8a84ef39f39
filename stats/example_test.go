package stats_test

import (
	"fmt"

	"github.com/mpipc/mpipc/stats"
)

// A handle keeps one Counters; its slow paths count, its Stats method
// returns Load.
func ExampleCounters() {
	var c stats.Counters

	// A blocking call that spun in vain, then slept twice.
	spun := true
	c.Sleep(&spun)
	c.Sleep(&spun)
	// A call that gave up at its deadline.
	c.Timeout()

	fmt.Printf("%+v\n", c.Load())
	// Output: {Waits:2 Wakes:0 Timeouts:1 OwnerDeaths:0 SpinSleeps:1}
}
