// Package waitset waits for the first of several mpipc objects to become
// ready: Python's multiprocessing.connection.wait and Go's select, for
// queues, pipes, events, semaphores, locks and barriers shared between
// processes.
//
// A [Case] names one object and what to wait for. Report-only cases
// ([Readable], [Writable], [PipeReadable], [EventSet], [Acquirable],
// [Tripped]) say that the object was ready when Select looked; another
// process may act first. Completing cases ([Get], [Put], [Recv],
// [Acquire], [Lock]) perform the operation as part of the wait, so nothing
// can take what the caller was woken for: Select returns only once one
// case completed.
//
// A [Lock] case whose holder dies while Select sleeps is found by the
// process's liveness checker within the lock's check interval; the case
// then completes holding the lock, with lock.ErrOwnerDead, as
// Lock.Acquire does. A barrier has no completing case: a Wait joins the
// round, and an arrival cannot be taken back when another case wins, so
// [Tripped] watches the round from outside (see its documentation).
//
//	i, err := waitset.Select(ctx, waitset.Get(jobs, buf), waitset.EventSet(stop))
//
// Select comes in the module's three forms: [Select] with a context,
// [SelectTimeout] and [TrySelect]. A Select registers on every object's
// futex word and sleeps on all of them at once through the futex hub
// ([futex.WaitAny]): it costs no OS thread per object. [Ready] adapts a
// set of cases to a channel, for a Go select statement.
//
// # Caveats
//
//   - Cases are tried in a rotating order, so a case that is always ready
//     does not starve the others; no other fairness is promised.
//   - An Event that is set and cleared again while Select sleeps may be
//     missed, unlike Event.Wait, which counts such a pulse; likewise a
//     barrier Abort followed at once by a Reset.
//   - A Tripped case does not check that the barrier's parties live; the
//     parties waiting in the round do, and break it.
//   - A pipe end has one receiver at a time: a Recv and a Select (or two
//     Selects) on the same end must not wait together.
//   - On kernels without futex_waitv, a Select sleeps with one thread per
//     object (see package futex).
package waitset
