// Package faults is mpipc's fault campaign: tests only, no API. It proves
// what DESIGN.md's failure model promises, for every object kind, with real
// processes:
//
//   - The crash suite (harness_test.go, crash_*_test.go) runs Lock, RLock,
//     Semaphore, Condition (own RLock, and bound to a Lock), Event, Barrier,
//     Value, Array, Queue, JoinableQueue and Pipe in several child processes
//     and SIGKILLs one participant per trial at a random moment — half of
//     the time one that is inside a call that may sleep — then checks that
//     the survivors never hang (every trial is bounded; a hang fails with
//     the stuck child's goroutine dump), recover by the documented semantics
//     (ErrOwnerDead and Consistent for Lock, RLock and a Condition's lock;
//     ErrBrokenBarrier for a Barrier; at-most-once, never wedged, losses at
//     most one per kill for the queues; end of stream and ErrPeerGone for
//     the Pipe) and that every count is conserved. Children live across
//     trials; only the killed one is replaced. The default run does a few
//     trials per kind; -faults.trials=N runs N.
//   - The hostile-peer test (hostile_test.go) has one process scribble
//     random values into every 32-bit word of an object (or of the segment
//     header and directory) while two others use it: operations succeed or
//     fail with shm.ErrCorrupt or a documented error, never crash, never
//     write outside the object (guard pages around it are checked), never
//     run longer than a watchdog allows. -faults.hostile=D scribbles for D
//     per kind (default 1 s).
//   - Fuzz targets (fuzz_test.go, fuzz_more_test.go) for the Attach paths
//     of Lock, RLock, Condition, Value, Array, Queue, JoinableQueue and
//     Typed, and the blocking first operations of Semaphore, Event and
//     Barrier handles on arbitrary bytes: an error or a handle whose first
//     operations return promptly, never a crash (a watchdog turns a hang
//     into one). shm.Open and the Pipe have theirs in their own packages.
//   - SIGBUS (sigbus_test.go), the thread budget (threads_test.go) and
//     leaks of files, descriptors and mappings (leak_test.go, TestMain).
//   - The window hunter (windows_test.go) aims where random kills rarely
//     land: a victim process loops over operations that update more than
//     one shared word; the hunter stops it with SIGSTOP at random moments,
//     reads the shared words while every thread is stopped, and SIGKILLs
//     it only inside a declared window (an invariant between the words
//     broken mid-update). After each kill the survivor recovers the
//     documented way and uses the object for a fixed number of checked
//     operations. It reports the hits per window, and fails when a window
//     was never reached. The default run wants one hit per window;
//     -faults.windows=N wants N (RESULTS.md has a long run's counts).
//
// Regression tests of defects found in other packages are named after what
// they caught (TestRegression...) and run by default once fixed; one whose
// fix is pending (none at present) runs only with -faults.known and is
// reported as skipped without it.
//
// # What a kill leaves behind
//
// For each kind: what a process SIGKILLed at any instruction can leave in
// shared memory, and what the survivors see. "Hunted" names the windows
// windows_test.go aims at; the other rows rest on the crash suite's random
// kills and on reading the code.
//
//	kind           left behind                           survivors see
//	Lock           lock word naming the dead process     next acquirer: ErrOwnerDead within a
//	                                                      check interval; repair, Consistent
//	RLock          lock word, owner goroutine and extra  ErrOwnerDead at level 1 (the dead
//	               levels in any combination (hunted:     owner's levels are dropped); repair,
//	               word without goroutine, level 1,       Consistent, Release; then normal
//	               levels above 1, guarded data torn)
//	Condition      a waiter slot naming the dead: bit     a Notify that reached the dead waiter
//	               set over a free slot (hunted: mid-     is passed on; the slot is reclaimed
//	               register or mid-free), or waiting,     when the bitmap is next full; Wait on
//	               notified, withdrawn; and the lock as   an idle Condition times out cleanly;
//	               Lock/RLock (hunted: registered with    the lock as above
//	               the lock held, lock taken back with
//	               the slot not freed)
//	Barrier        an arrival in the count, a released    waiters: ErrBrokenBarrier within a
//	               waiter that never leaves, the last     check interval; Open and Reset
//	               arrival with its action unfinished     reclaim dead registrations and break a
//	               (all hunted), a registration slot      round in progress; after Reset, full
//	                                                      rounds
//	Value (wide)   writer lock held, the unpublished      Load never torn (the last published
//	               slot torn or complete, the sequence    value, or the one the dead writer had
//	               not advanced (hunted)                  just published); the next writer takes
//	                                                      the writer lock over without a report
//	                                                      (nothing published is torn)
//	Value (lock)   the lock held by the dead, what it     the next Update takes it over, marks
//	               guarded (a compound update) half done  the Value inconsistent: ErrOwnerDead
//	                                                      from Update and Err until Consistent
//	Queue          a producer's claim (hunted: claimed,   consumers resolve the claim after a
//	               not committed), a consumer's borrow    check interval: a producer's becomes
//	               (hunted); a Get killed while copying   "skip", a consumer's frees the slot;
//	               holds nothing                          at most one message lost per kill,
//	                                                      none twice
//	JoinableQueue  as Queue, plus the dead taker's        a put not committed is no task; Join
//	               entry counting the tasks it took and   frees a dead taker's entry (its tasks
//	               had not done (hunted: take counted     count as done) and returns; a take
//	               before the message left the ring,      counted before its CAS keeps the
//	               taken and not returned, taken and      message in the ring (never lost to
//	               not done)                              the count)
//	Pipe           a record written and its tail not      the survivor drains every published
//	               published, a record consumed whose     record intact and in order (every
//	               Recv had not returned (hunted); a      Send that returned arrives), then
//	               dead process's end                     EOF; a dead end is claimed again
//	segment        the segment lock held by the dead in   the next Alloc takes the lock over and
//	directory      Alloc (entry written, not reserved;    repairs: entries of dead creators
//	               reserved) or in Destroy (entry dying;  freed with their space, a dying entry
//	               freed) (hunted), an entry left         ready again (then destroyable: the
//	               initializing (hunted)                  dead hold nothing); no space is lost
//	Array          the lock held by the dead, elements    the next access takes the lock over
//	               torn by a CopyIn, Set or Update in     and marks the Array inconsistent:
//	               progress (hunted)                      each element old or new, never a
//	                                                      hang; Err, Update, SetSlice report
//	                                                      ErrOwnerDead in every process until
//	                                                      a repair calls Consistent
//	Semaphore,     one state word each: units held by     crash suite: no wedge; a dead holder's
//	Event          the dead (Semaphore); no two-word      units are lost (see the package docs)
//	               window to hunt
//
// # A named segment truncated behind our back
//
// A named segment is a file that any process allowed to write it can
// ftruncate while others have it mapped (a sealed memfd from
// shm.CreateAnonymous cannot shrink). An access to a page past the new end
// of the file usually raises SIGBUS; not always: tmpfs may back the file
// with a large folio that the kernel cannot split on a partial truncation,
// and then the bytes past the new end read as zeros and stay writable
// (seen on Linux 6.18), so the objects silently lose their state. The Go
// runtime turns a SIGBUS in Go code into
// a fatal error, "unexpected fault address" followed by "fatal error:
// fault" and "[signal SIGBUS: bus error ...]", and the process exits with
// status 2; recover cannot catch it. A goroutine that has called
// debug.SetPanicOnFault(true) instead gets a panic whose value is a
// runtime.Error (with an Addr method giving the faulting address), which
// recover catches; the mapping stays broken, so the goroutine must stop
// using it. shm.Open and shm.Inspect detect the truncation before mapping
// (shm.ErrTruncated); an already mapped Segment cannot see it without an
// fstat. TestTruncatedSegmentFaults shows both behaviours in child
// processes.
//
// # Caveats
//
//   - The crash suite kills at random moments, not at chosen instructions:
//     it finds windows by repetition. The long form (-faults.trials=1000)
//     is what gives confidence; the short form mostly guards against
//     regressions that break recovery altogether.
//   - The thread-budget tests count OS threads from /proc/self/status;
//     the Go runtime may keep a few more threads than it needs.
package faults
