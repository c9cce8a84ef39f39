// Package ringbuf provides message queues in shared memory for processes:
// a bounded multi-producer multi-consumer Queue of byte messages, a Typed
// queue of fixed-size values, a JoinableQueue with Python's task
// accounting, a SimpleQueue, and Pipe, a connection between two processes.
// They are Python multiprocessing's Queue, JoinableQueue, SimpleQueue and
// Pipe without pickling, feeder threads or kernel copies.
//
// # Queue
//
// A Queue lives in a segment by name ([Create], [Open]) or in memory the
// caller owns ([Init], [Attach], [SizeOf]). Capacity and maximum message
// size are fixed at creation; a message is any []byte up to that size,
// and a longer one is refused with [ErrTooLarge].
//
// The capacity is any number from 1 to MaxCapacity, as Python's maxsize:
// a queue of capacity 6 holds 6 messages, Full and Len say so at exactly
// 6, and a seventh Put fails (TryPut, PutTimeout: [ErrFull]) or blocks.
// The ring underneath has R slots, the capacity rounded up to a power of
// two (at least 2), and the capacity is kept in the header as the limit;
// a queue of capacity C and maximum message size M takes SizeOf(C, M) =
// 384 + R × roundup(64+M, 64) bytes: 131,456 bytes for 1024 messages of
// 64 bytes, 1,408 for 6, about 1 MiB for 256 messages of 4 KiB.
//
// The limit costs nothing when the capacity is a power of two (2 or
// more): the ring itself is the limit. Otherwise a producer may claim
// position p only while p − head < C, head being the consumers' position
// hint: each Put loads the consumers' head cache line once (a shared read
// of a line consumers write: a cache miss when a consumer has just taken
// a message, about the cost of one more slot read), and only when the
// test fails does it scan for the exact consumer frontier. No shared
// counter is written, so the limit is exact without one more locked
// instruction: positions are claimed one at a time by the slot's
// compare-and-swap, and each producer tests its own position.
//
// A capacity of 0 or less, Python's "unbounded", gives [DefaultCapacity]
// (1024) messages. This is the one divergence in sizes: a queue in shared
// memory cannot grow, so a Put beyond 1024 waiting messages blocks where
// Python's would not; pass a capacity to choose another bound.
//
// Put and Get come in three forms (context, timeout, try), as every
// blocking call of mpipc. GetInto copies into the caller's buffer without
// allocating; Reserve/Commit writes a message in place and Borrow/Release
// reads one in place. An uncontended Put is two locked instructions
// (compare-and-swaps on the slot word: claim, commit) and a Get one (Get,
// GetInto and Typed.Get copy the message out, then take it with one
// compare-and-swap; Borrow claims and releases: two); no syscall, clock
// read or allocation (GetInto). A Put into a full queue or a
// Get from an empty one spins (at least about 6 µs, as the C rings it is
// measured against), then sleeps on a futex event count; the other side
// wakes it only when a sleeper is registered.
//
// Messages put by one goroutine are received in the order it put them
// (by whichever consumers take them).
//
// # Close, Shutdown and Restart
//
// Close releases this handle only, as io.Closer and Python's Queue.close
// do: the handle's later calls, and those blocked in it, return
// [ErrClosed]; the queue, its messages and every other handle, in this
// process and others, go on. Shutdown stops the queue for every process,
// as Python 3.13's Queue.shutdown: later Puts fail with [ErrShutdown],
// Gets drain what remains and then fail with ErrShutdown, and every
// blocked caller in every process wakes; Shutdown(true) (immediate)
// discards what remains, and a JoinableQueue counts the discarded tasks
// as done, so Join returns once the tasks already taken are done.
// Restart makes a shut-down queue usable again for everyone: a named queue
// in a persistent segment outlives its shutdown (Python's queue, whose
// shutdown is final, has no such call).
//
// The ring is Vyukov's bounded MPMC queue, written as rigtorp's MPMCQueue
// writes it, with one change: a position is claimed by a compare-and-swap
// on the slot's own sequence word, which records the claimant; the shared
// head and tail counters are hints, stored by each claimant and never
// compared-and-swapped. See the layout comment in queue.go.
//
// # Crash semantics
//
// A producer or consumer killed (even with SIGKILL) at any instruction
// never wedges the queue:
//
//   - A waiter stuck behind a slot that another process claimed checks,
//     after Options.CheckInterval (default 100 ms), whether that process is
//     alive. If it is dead, a producer's slot is marked "skip" (consumers
//     pass over it) and a consumer's slot is freed for the next lap; both
//     by a compare-and-swap from the exact claimed word, which the live
//     claimant's own commit also needs, so a slow live claimant and a
//     reclaimer can never both succeed. Survivors keep putting and getting
//     after that bounded recovery time.
//   - No message is ever delivered twice.
//   - The only messages lost are those in flight in the killed process: at
//     most one per interrupted operation (the message a producer was
//     putting, the one a consumer had borrowed, or the one a Get had just
//     taken and not yet returned to its caller). A Get killed while it
//     copies a message out loses nothing: it takes the message only after
//     the copy, so the message stays for the next consumer.
//   - A sleeper killed while registered costs the next notification on
//     its side one futex wake syscall that finds nobody, nothing else: a
//     notification consumes every registration made before it (see
//     qEvent in queue.go). Sleepers also wake every check interval, so a
//     producer killed between its commit and its wake delays a sleeping
//     consumer by at most that long.
//
// For a JoinableQueue (see [JoinableQueue] for how tasks are counted):
//
//   - A put in progress (claimed, not committed) is not yet a task: a
//     producer killed before its commit leaves no task behind, only the
//     claimed slot, which is skipped as above.
//   - A consumer killed between Get (or Borrow) and TaskDone: its
//     taken-but-not-done tasks count as done. Join finds the dead taker
//     within a check interval and returns (Python's JoinableQueue hangs
//     there for ever; this one need not). A task the dead process had
//     handed to a live one before dying may so be counted done before
//     its TaskDone, which may then return ErrTaskDone.
//   - Only with more than 40 taking processes alive at once are takes
//     counted in one shared "loose" word that no death clears; a process
//     killed with loose tasks leaves them unfinished, as in Python.
//
// # Hostile memory
//
// The handle caches capacity, message size and stride when it attaches;
// slot indices are masked; lengths are checked against the maximum; every
// slot word is checked against the states the algorithm can produce; and
// every search is bounded. A peer that writes garbage into the queue can
// make operations fail with shm.ErrCorrupt (wrapped), never make this
// process read or write outside the mapping, panic, or spin forever.
//
// # Typed and joinable queues
//
// [Typed] stores a fixed-size, pointer-free T directly in each slot; the
// element type's fingerprint (internal/typeinfo) is stored at creation and
// checked at Open and Attach ([shm.ErrTypeMismatch]). [JoinableQueue]
// counts unfinished tasks: the messages in the ring plus those taken and
// not yet done (per taking process); TaskDone removes one, Join waits for
// zero; TaskDone called more times than messages were taken returns
// [ErrTaskDone] and changes nothing.
//
// # SimpleQueue
//
// [SimpleQueue] is Python's multiprocessing.SimpleQueue: Put, Get, Empty
// and Close on a Queue (shm.KindSimpleQueue in a segment). Close releases
// the handle; after it, Empty returns ErrClosed where Python's empty()
// raises OSError.
//
// # Pipe
//
// A Pipe is a connection between two processes, duplex or one-way, built
// on single-producer single-consumer byte rings (one per direction), which
// are cheaper than the MPMC queue when there is exactly one writer and one
// reader. Send, Recv, Poll and Close; when the peer closes or dies, Recv
// drains what was sent and then reports io.EOF, as a kernel pipe does.
// See [Conn].
//
// [CreatePipe] and [InitPipe] make a pipe and return end 0; the other
// process claims end 1 with [OpenPipe] or [AttachPipe] (a one-way pipe,
// OneWay in [PipeOptions]: end 0 receives, end 1 sends). A pipe with rings
// of C bytes takes PipeSizeOf = 192 + (256+C) bytes per direction. Each end
// records its process's identity; a Recv or Send that waits checks every
// CheckInterval (default 100 ms) whether the peer still lives, so a peer
// killed mid-stream gives io.EOF (Recv, after draining) or [ErrPeerGone]
// (Send) within about that long. A message takes 8 bytes of header plus
// its length rounded up to 8, and one of 256 bytes or more up to 56 bytes
// of padding that starts it on a cache line; the receiver gives the space
// back as soon as Recv returns. Indices and record headers written by the peer are
// validated before use (shm.ErrCorrupt).
//
// A message may be up to [PipeMaxMsgSize] (2 GiB - 1, as in Python)
// whatever the ring size: the ring size is a throughput choice, not a
// limit. A message of at most C-64 bytes is one record; a longer one is
// sent in pieces of about C/4 bytes, framed in the record header's spare
// bits:
//
//	first piece     header (n | 1<<31, ^(n | 1<<31)), uint64 total length,
//	                n-8 bytes of the message
//	continuation    header (n | 1<<30, ^(n | 1<<30)), the next n bytes
//
// (a piece of 256 bytes or more has its padding after the header, as a
// whole message has).
//
// The receiver reassembles the pieces, into the caller's buffer (Recv) or
// a slice it allocates (RecvBytes), and delivers the message whole or not
// at all. One Send call writes every piece of its message, and Sends on an
// end do not overlap, so pieces of two messages never interleave. A Send
// that fails
// part way (timeout, cancellation, Close) abandons its message: the
// receiver drops the pieces it took when the next message starts. A
// sender that dies part way is seen as at the end of any stream: the
// receiver drops the partial message and returns io.EOF. A total length
// over the pipe's MaxMsgSize, or pieces that carry more than it, are
// shm.ErrCorrupt; RecvBytes allocates what a validated first piece
// announces, at most 64 MiB before the bytes arrive, and [Conn.RecvBytesMax]
// refuses (consuming it) a message longer than its maxLength with
// [ErrMaxLength]. To receive a message of unknown size, call RecvBytes, or
// Recv, which on a short buffer returns the message's length with
// [ErrShortBuffer] and leaves the message for a call with a larger buffer.
// [Conn.Readable], [Conn.Writable] and [Conn.Closed] are Python's
// Connection.readable, writable and closed.
//
// # Caveats
//
//   - Liveness of a claimant comes from the segment's process registry
//     (shm.Registry): a claimant in another pid namespace or stopped is
//     alive, a killed one dead, with or without /proc. A claimant that died
//     in the few instructions between claiming a slot and recording its
//     full identity is recognised by its registry slot and 14 bits of the
//     slot's generation (kept in the slot word): if that registry slot has
//     been claimed again a multiple of 16,384 times meanwhile, the queue
//     slot stays blocked while the slot's new holder lives. A queue placed
//     with Init/Attach without Options.Registry never reclaims a slot.
//   - Sequence words are 32 bits: a producer or consumer stalled between
//     reading a slot and its compare-and-swap for 2^32 operations of the
//     others could be fooled (ABA). That is hours at full speed.
//   - Len, Empty and Full are snapshots. Len counts messages being written
//     or read at that instant.
//   - Close does not unmap or free the memory: a handle keeps its segment
//     mapped until it is no longer referenced. Shutdown is the one call
//     that acts for every process.
//   - Fairness: Vyukov's ring is not FIFO between waiting producers; a
//     woken sleeper may lose to a spinning one.
//   - A Pipe end is single-producer, single-consumer: one goroutine may
//     send while another receives, but Sends (and Recvs) must not overlap;
//     goroutines that share an end for sending hold a lock of their own
//     around each Send (the pipe keeps its fast path free of one).
//     A Send that finds room in the ring to a peer that died succeeds (the
//     message is lost with the peer); only a Send that waits notices.
//     A peer end never claimed counts as alive: Recv waits for it.
//   - Poll reports a message that has begun to arrive: for one in pieces,
//     Recv may then wait for the rest, as Python's recv does after poll.
//     A message in pieces that a dead receiver had begun to take is lost
//     to the end's next owner (who drops its remaining pieces).
package ringbuf
