// Package barrier provides Barrier, a reusable barrier for a fixed number
// of parties shared between processes: Python's multiprocessing.Barrier
// (threading.Barrier), built on one futex word and made robust against
// parties that die.
//
// A Barrier lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [SizeOf], [Align]). Each call of Wait
// counts one arrival; when the last of the parties arrives, it runs the
// optional action and then releases the round: every Wait of the round
// returns an index, unique within the round (parties-1 for the last to
// arrive). The barrier can then be used again, for any number of rounds.
//
// The barrier breaks — every Wait in progress and every later Wait returns
// [ErrBrokenBarrier] until [Barrier.Reset] — when [Barrier.Abort] is
// called, when a Wait times out (that Wait returns [ErrTimedOut], which is
// an ErrBrokenBarrier), when the action fails (its party gets the action's
// error, or [ErrActionPanicked]), or when a registered process dies (see
// below). A Reset while parties wait breaks their round (they get
// ErrBrokenBarrier) and opens a new one.
//
// # Rounds and draining
//
// As in Python, a released round drains before the next one opens: a fast
// party that comes back for the next round waits until every released
// waiter of the previous one has left. A generation counter in the state
// word tells a waiter whether its own round was reset. So no party ever
// slips into the previous or the next round.
//
// # Actions
//
// The action is a Go func, so it cannot live in shared memory: each
// handle brings its own in Options.Action (each process passes its own at
// Create, Open, Init or Attach, just as each Python process holds its own
// Barrier object with its own action). The action of the handle through
// which the last party arrived is the one that runs, in that party's
// process, once per round, before any party of the round is released.
// Handles without an action run none; give every party the same action
// when the action must run every round.
//
// # Dead parties
//
// Every handle registers its process (its identity in the segment's process
// registry, see shm.Registry) in one of the barrier's slots when it is made (Create,
// Open, Init, Attach) and deregisters it at Close. The rule: every
// registered process counts as a party that may still arrive. While a
// waiter sleeps, its process's liveness checker (one goroutine for all
// the process's sleepers) checks every registered process with the
// registry every Options.CheckInterval (default 100 ms); if one is dead,
// it frees its slot and breaks the barrier. The same look wakes the
// sleepers if the barrier's state changed without the wake that should
// have come with it (a party killed in between); a sleeper does not wake
// otherwise. So a party killed while
// others wait — whether it had arrived or not — breaks the barrier for
// them within about one check interval, and a Reset makes the barrier
// usable again for the processes that remain (it frees the slots of dead
// processes; so does an Open that finds every slot taken). A dead party
// found at Open or Reset while a round is in progress (arrivals counted,
// or released waiters still leaving) breaks that round: its arrival or its
// departure can never come, and once its slot is free no sleeping waiter
// could find it dead any more. A party in another pid namespace, or
// stopped with SIGSTOP, is alive.
//
// Consequences: close every handle before the process exits normally, or
// its exit counts as a death. More handles than parties are allowed (a
// parent that creates the barrier for its children, a monitor): their
// processes are watched too, and the death of any of them breaks the
// barrier for those waiting. A barrier has Options.Handles slots (default
// max(2×parties, 8)); a handle beyond that fails with [ErrTooManyHandles].
// A handle made with Options.Observe registers nothing (for inspection
// tools such as mpipc stat, or a supervisor that only Aborts or Resets):
// its process's death breaks nothing.
//
// # Binary layout
//
// SizeOf(parties, handles) bytes, Align-aligned, little-endian:
//
//	offset 0   uint32  state word: bit 0 waiters, bit 1 draining,
//	                   bit 2 broken, bits 3..12 count, bits 13..31 generation
//	offset 4   uint32  magic "mpbr"
//	offset 8   uint32  layout version (Version)
//	offset 12  uint32  parties
//	offset 16  uint32  handles (registration slots)
//	offset 24  uint64  rounds released: bits 19..63 the count, bits 0..18
//	                   the generation of the last round counted
//	offset 64  [handles]uint64  registered processes (registry slot | generation<<32), 0 free
//
// # Cost
//
// The last party's Wait is one compare-and-swap to arrive and one to
// release, plus one futex wake system call only if a waiter sleeps. A
// waiter polls and spins briefly ([futex.Spin]) before it sleeps, so two
// running processes pass a Barrier(2) without system calls.
//
// # Caveats
//
//   - Liveness comes from the process registry. A barrier placed with
//     Init/Attach without Options.Registry cannot tell a dead party: the
//     others wait until their timeout or context ends.
//   - Detection needs a sleeping waiter: nobody notices a death while no
//     one waits. The first Wait after it notices within a check interval.
//   - A cancelled Wait withdraws its arrival and leaves the barrier as it
//     was, except after the last party arrived: then the round's outcome
//     is at most an action away, and Wait waits for it and returns it.
//   - A Wait whose timeout passes after the last party arrived waits for
//     the action to finish too, as in Python (whose action runs under the
//     barrier's lock) — but, cancelled or timed out, for at most 50 ms
//     more: then it breaks the barrier (the action's party gets
//     ErrBrokenBarrier). An action that outlasts the others' timeouts by
//     more than that breaks its round; and a state word a peer forged to
//     look like an action in progress cannot hold a timed Wait longer.
//   - Wakeups are broadcast: a release wakes every sleeper of every
//     process; with many parties asleep, that is O(parties) wakeups.
//   - The generation has 19 bits. A waiter that sleeps, without running,
//     through exactly a multiple of 2^19 Resets and rounds would not
//     notice its round was reset.
//   - MaxParties is 1023.
package barrier
