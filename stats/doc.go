// Package stats counts contention on mpipc objects, per process: how often
// a handle slept in the kernel, woke sleepers, gave up at a deadline, took
// an object over from a dead holder, and spun in vain before sleeping.
//
// Every blocking object's handle (a [github.com/mpipc/mpipc/lock.Lock],
// a [github.com/mpipc/mpipc/ringbuf.Queue], ...) carries [Counters] in
// process memory and returns a snapshot of them from its Stats method.
// The counters live in the handle, never in the shared segment: one
// process's counts say what that process went through, and no other
// process pays for them. Value, Array and Dict do not count yet: their
// writers' waits are the robust mutex's, which counts, but they have no
// Stats method.
//
// # Cost
//
// The counters are incremented only on slow paths, at the points where a
// call is about to make (or has made) a system call or has given up: an
// uncontended Acquire, Release, Put or Get touches no counter, no shared
// cache line and no clock; the fast paths compile to the same instructions
// as without counters. An increment is one atomic add on a word of the
// handle, which is noise next to the futex system call it accompanies.
//
// # Publishing
//
// Create and Open (and OpenOrCreate) register the handle they return
// under its segment's path and its object name (see [Publish]);
// [Snapshot] sums, per object, the counters of this process's live
// handles. The registry holds weak
// pointers: a handle that is garbage-collected drops out of it (its counts
// with it), so a service that opens objects for a while and drops them
// does not grow the registry forever. The handle's Stats method stays the
// source for cumulative figures; the snapshot is a view of the handles in
// use. Handles made with Init or Attach have no name and are not
// registered.
//
// Package [github.com/mpipc/mpipc/stats/statsvar], imported for its side
// effect, publishes the snapshot as the expvar variable "mpipc". It is a
// package of its own because expvar brings in net/http and registers a
// handler on http.DefaultServeMux, which a program that only takes a Lock
// should not pay for.
//
// # Caveats
//
// The counts of one handle are read one counter at a time: a snapshot
// taken while other goroutines use the handle may mix counts from slightly
// different moments. Counters wrap after 2^64 events. Waits count sleeps,
// not calls: a waiter woken without getting what it waited for (a
// spurious wake, a periodic liveness check, a release another waiter won)
// that sleeps again counts two, and a sleep the kernel refuses because the
// word changed just before counts as well.
// A handle that was closed but is still reachable stays in the snapshot.
package stats
