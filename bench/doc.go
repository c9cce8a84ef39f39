// Package bench is mpipc's cross-process benchmark suite: the workloads of
// the IPC anchors (W1..W11), run with mpipc's primitives and with peers
// measured in the same run, each case in separate processes and each
// checking its result. `mpipc bench` is its command line.
//
// # Workloads
//
//	W1       uncontended acquire+release loop, 1 process            ns_per_op
//	W2       2 processes × n increments of a counter under a lock    ops_per_s
//	W3       semaphore ping-pong between 2 processes                 roundtrips_per_s, ns_per_roundtrip
//	W4       condition / event ping-pong                             roundtrips_per_s, ns_per_roundtrip
//	W5       Barrier(2) rounds                                       rounds_per_s
//	W6       SPSC throughput, 64-byte messages                       msgs_per_s, MB_per_s
//	W6-4KiB  the same with 4096-byte messages                        msgs_per_s, MB_per_s
//	W7       MPMC: 2 producers + 2 consumers, 64 bytes              msgs_per_s
//	W8       request/response over two queues, 64 bytes             median_us, p99_us
//	W9       8 MiB array: one process writes, the other reads        write_GBps, read_GBps, GBps
//	W10      shared dict, 1,024 int64 keys, 2 processes, 90 % get    ops_per_s
//	W10-1p   the same with 1 process                                 ops_per_s
//	W11      pool of 2 workers, tiny tasks f(x) = x·x + 1, in order  tasks_per_s, us_per_task
//
// Scale workloads, each compared in the table with its base workload of
// the same run (the ratio shows how the figure holds up as work grows):
//
//	W2-8p      W2 with 8 processes (count exactly 8n); base W2          ops_per_s
//	W7-4x4     W7 with 4 producers + 4 consumers; base W7               msgs_per_s
//	W7-8x8     W7 with 8 + 8 (16 processes); base W7                    msgs_per_s
//	W12-K      Open of one Value among K = 10, 1000, 10000 objects in   ns_per_open
//	           a segment, every name in turn, each checked; base W12-10
//	W13-C      W6 with a queue of C = 2, 64, 1024, 65536, 1M slots;     msgs_per_s, MB_per_s
//	           base W13-1024 (W6's geometry)
//
// A workload selects the workloads named after it and a dash: W7 runs W7,
// W7-4x4 and W7-8x8; W13 every capacity; =W7 runs W7 alone. Options.Systems
// (`mpipc bench -s mpipc-queue`) keeps only the named systems.
//
// W11 is timed by the parent, which dispatches (see w_pool.go): the
// pool's start-up and a 4-task warm-up are outside the clock.
//
// mpipc systems are named mpipc-lock, mpipc-rlock, mpipc-semaphore,
// mpipc-value, mpipc-condition, mpipc-event, mpipc-barrier, mpipc-queue,
// mpipc-pipe, mpipc-array, mpipc-rawarray, mpipc-dict, mpipc-pool-map,
// mpipc-pool-map-chunk1 and mpipc-pool-submit; peers go-sync-mutex,
// go-chan, go-rwmutex-map and go-sync-map (in one process: the floor, not
// a competitor), go-os-pipe and
// go-unix-seqpacket (across processes).
//
// # Protocol
//
// As in the anchors: the parent creates a file in /dev/shm, maps it
// MAP_SHARED and initializes the case's objects in it (Init on memory it
// owns); it starts the workers by re-executing its own binary in a
// process role (a program that runs the suite calls process.Main, or
// WorkerMain, first thing in main and in TestMain); each worker attaches (Attach), counts
// itself ready on a futex word and sleeps until the parent releases them all
// at once; each stamps CLOCK_MONOTONIC before and after its loop into the
// file; elapsed = max(end) − min(start). The parent then checks the result
// (exact counts, FIFO order, checksums, final object state) and a mismatch,
// a worker's nonzero exit or a 120 s timeout fails the run loudly. Message
// transports (Queue, Pipe, os.Pipe, socket pair, channels) run the very same
// protocol code through one interface.
//
// Binary layout of the shared file:
//
//	offset 0     uint32      ready: workers attached and waiting
//	offset 4     uint32      go: set to 1 to release the workers
//	offset 8     uint32      spare futex word for workloads
//	offset 64    [16]uint64  start stamps (ns, CLOCK_MONOTONIC)
//	offset 192   [16]uint64  end stamps
//	offset 320   [64]uint64  results written by workers
//	offset 4096  the case's objects
//
// # Output
//
// `mpipc bench -format benchstat` (WriteBenchstat) prints one line per run
// of every case in the go test -bench format, for benchstat to compare two
// runs.
//
// Run returns one Summary per (workload, system, metric) with the median,
// min and max over the runs; cases run round-robin (run 1 of every case,
// then run 2, …) as the anchors' run.sh does. WriteJSON prints them in the
// format of the anchors' results-*.jsonl; WriteTable pairs every mpipc
// figure with the peers of its workload and, when an anchors file is read
// with ReadAnchors, with the best relevant C and Python anchor, and prints
// the ratio (above 1: mpipc better).
//
// # Caveats
//
//   - Figures on a shared, loaded machine are noisy; blocking cases (W3, W4,
//     W5, W8 without spinning) are bimodal, depending on whether both
//     processes share a CPU. Compare figures from one run only, use -n 3 or
//     more, and read min and max, not just the median.
//   - In-process peers run their roles as goroutines of one worker process
//     and report procs 1.
//   - W8 times each round trip with time.Now (vDSO), as the C anchor times it
//     with clock_gettime: about 20–40 ns of each figure is the clock.
//   - Pipe peers pass their descriptors to the workers through
//     exec.Cmd.ExtraFiles, which makes them blocking: reads and writes are
//     plain system calls, as in C, not Go's netpoller.
package bench
