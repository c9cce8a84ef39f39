// Package pool runs functions on tasks in a pool of worker processes:
// Python's multiprocessing.Pool for Go, fed through mpipc's shared-memory
// queues, and which keeps going when a worker dies.
//
//	var square = pool.NewFunc("square", func(x int64) (int64, error) { return x * x, nil })
//
//	func main() {
//		process.Main() // workers are this program, re-executed
//		p, err := pool.New(ctx, 4, nil)
//		...
//		defer p.Terminate()
//		squares, err := pool.Map(ctx, p, square, xs, nil)
//	}
//
// # Functions, tasks and results
//
// A worker runs functions registered with [NewFunc] at package level, so
// that parent and workers (the same binary) know them by name. Tasks and
// results are fixed-size pointer-free types (numbers, bools, arrays and
// structs of them: copied as their memory image, no reflection on the
// hot path) or []byte, for anything the caller encodes. A function's
// error, or its panic, fails that task alone, as an exception does in
// Python; the worker goes on.
//
// [Map] returns results in task order (Pool.map), [MapUnordered] yields
// them as they come (imap_unordered), [Submit] returns a [Future]
// (apply_async) and [Apply] waits for it (apply). Tasks travel in chunks
// (MapOptions.ChunkSize, as Python's chunksize, and with the same
// default: the tasks over four times the workers) of at most
// Options.MaxMsg bytes; a chunk whose results outgrow a message comes back
// in part, and the rest runs again as a smaller chunk.
//
// # Workers
//
// Each worker has its own pair of queues in one anonymous segment: the
// parent queues up to Options.Depth chunks to it, the worker answers each
// chunk with one message. [Pool.Close] stops new work and lets the workers
// finish and exit (close), [Pool.Wait] waits for them and releases the
// segment (join), [Pool.Terminate] kills them at once (terminate).
// Options.MaxTasksPerChild replaces a worker after that many tasks (a
// chunk of a Map counts as one task, as in Python).
//
// # A worker that dies
//
// The parent learns of a worker's death from the child's exit, however
// it happened (SIGKILL, the OOM killer, a crash, os.Exit). It then
//
//   - takes the worker's answers that reached its queue,
//   - takes back the chunks still queued to it, untouched, and dispatches
//     them again (this is no retry: they never ran),
//   - retries the chunk the worker was running up to Options.Retries
//     times, each time in another worker; after that its tasks fail with
//     a [*WorkerDiedError] (errors.Is [ErrWorkerDied]) that carries the
//     worker's pid, exit status and stderr tail,
//   - starts a new worker in the dead one's place.
//
// So a call never hangs on a dead worker, each task's result is delivered
// at most once, and the pool stays usable. Workers that keep dying before
// they answer anything (deadStartLimit of them in a row: a crash at
// start-up) break the pool: its work fails with [ErrBroken].
//
// # Cancellation
//
// When the ctx of a Map or MapUnordered is done, the call stops
// dispatching its chunks and returns at once. Up to Depth chunks already
// queued to each worker still run; their results are dropped.
//
// # Caveats
//
//   - A task retried after its worker died has run, in part or whole,
//     more than once: functions with side effects see that.
//   - Under the race detector a queue consumer claims a message before
//     copying it, so a worker killed inside its Get can hold a chunk that
//     is then counted as running (retried or failed) although it never
//     ran.
//   - At most MaxWorkers (32) workers per pool: two queues each in one
//     segment directory.
package pool
