// Package statsvar publishes this process's mpipc contention counters
// (see package [github.com/mpipc/mpipc/stats]) as the expvar variable
// "mpipc". Import it for its side effect:
//
//	import _ "github.com/mpipc/mpipc/stats/statsvar"
//
// The variable is a function: nothing is computed until someone reads it
// (at /debug/vars, if the program serves http.DefaultServeMux, or with
// expvar.Get). Its JSON form is the [stats.Snapshot] map, keyed by segment
// path and then object name:
//
//	"mpipc": {"/dev/shm/app": {"jobs": {"kind": "queue", "handles": 1,
//	          "waits": 12, "wakes": 30, "timeouts": 0, "owner_deaths": 0,
//	          "spin_sleeps": 12}}}
//
// # Caveats
//
// Importing expvar registers its handler on http.DefaultServeMux and
// publishes "cmdline" and "memstats"; that is why this is a package of its
// own. Publishing panics if another package already published "mpipc".
package statsvar

import (
	"expvar"

	"github.com/mpipc/mpipc/stats"
)

// Name is the name of the expvar variable.
const Name = "mpipc"

func init() {
	expvar.Publish(Name, expvar.Func(func() any { return stats.Snapshot() }))
}
