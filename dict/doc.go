// Package dict is a hash map in shared memory: Python's
// multiprocessing Manager().dict() without the server process. Every
// process that maps the memory reads the map directly, without a lock and
// without a round trip, and no process killed at any instruction can
// wedge the map or leave an entry half-written.
//
// Two forms share one engine: Dict[K, V] for fixed-size keys and values
// without pointers (numbers, bool, arrays and structs of them), and Bytes
// for byte-string keys and values of bounded length (a Python
// d["user:42"] = blob). Both are placed like every mpipc object: Create
// and Open by name in a segment (the directory checks the kind and the
// fingerprints of K and V), or Init and Attach in memory you own (SizeOf
// and SizeOfBytes give the size for a capacity).
//
// # Layout and concurrency
//
// The map is split into stripes (Options.Stripes; by default one per 64
// entries of capacity, up to 64). The top bits of a key's hash pick its
// stripe, the low bits its home slot in the stripe's region, an
// open-addressing table with linear probing. Each stripe has a robust
// lock that its writers take, so writers of keys in different stripes
// run in parallel, and two regions, of which one is active.
//
// Every entry has a control word (a version and a state: empty, live or
// deleted) and two copies of its value. A writer writes the key (only
// into a slot that is not live) and the value copy that the next version
// names, and then stores the control word with that version: that one
// store publishes the change. A Get takes no lock: it reads the stripe's
// epoch, probes, copies the value the control word names, and checks that
// neither the control word nor the epoch moved. It never waits for a
// writer in progress, who writes the other copy; it retries only when a
// write completed under it, and after 64 such retries in a row it takes
// the stripe lock to guarantee progress.
//
// # Deletion, sizing and ErrFull
//
// Delete leaves a tombstone, or an empty slot when the next slot is empty
// (then no probe runs through it, and the tombstones just before it
// become empty too). An insert reuses the first tombstone on its probe
// path. When an insert would leave more than 3/4 of the region used by
// live entries and tombstones, the writer rebuilds the stripe into its
// other region, without tombstones, and switches regions with one store
// of the epoch: readers of the old region notice the epoch and retry. So
// a long churn of inserts and deletes keeps probes short: TestChurn
// deletes and inserts 10× the capacity at 3/4 of it, after which a hit
// reads 1.3 slots on average (at most 7) and a miss 1.7.
//
// A stripe holds at most its limit of live entries, in a region of the
// smallest power of two of slots at least twice the limit, so at most
// half of it is live (the load factor stays at or below 0.5, plus
// tombstones up to 0.75 in all). With one stripe the limit is the capacity, so
// the capacity is exact: the entry after it is ErrFull. With more, the
// limit is the mean share plus four standard deviations plus 8, so keys
// spread by the hash fill the map to at least its capacity before any
// stripe is full; ErrFull then means "this key's stripe is full". Size
// the capacity for the most entries you will hold. Memory is 2 regions ×
// slots × (8 + 8·key words + 16·value words) bytes per stripe (SizeOf
// says exactly): for int64 to int64 with a capacity of 1,024 (16 stripes
// of 256 slots), 258 KiB. Denser regions (4/3 of the limit) were
// measured slower on W10, with one process and with two.
//
// # Crash safety
//
// A writer killed at any instruction leaves each entry as it was or as it
// was going to be: the control word store is the commit point of every
// insert, replace and delete, and a rebuild or Clear commits with the
// epoch store. Only the stripe's two counts (live entries and tombstones)
// can be off; the next writer of the stripe takes the lock with
// ErrOwnerDead (after waiting at most Options.CheckInterval for the
// holder to be found dead), recounts them, marks the lock consistent and
// carries on. Callers never see ErrOwnerDead. Readers never wait, dead
// writer or not.
//
// # Iteration
//
// All visits the stripes in turn, copying each under its lock (writers of
// that stripe wait for the copy; readers do not), and yields from the
// copy: each entry is seen at most once, an entry present for the whole
// iteration is seen exactly once, and the loop body may use the map.
//
// # Caveats
//
//   - Len and Clear are per stripe: Len sums counts read one after the
//     other, and Clear empties one stripe after the other.
//   - A corrupting peer that rewrites the map's memory makes no reader
//     panic, read outside the map or loop forever: every index and count
//     read from shared memory is range-checked and every loop is
//     bounded. It can make Get return garbage, report a present key
//     absent, or (holding a stripe lock in the name of a live process)
//     stop writers of that stripe; a Get that cannot take a lock after
//     its retries reports the key absent after a second.
//   - Keys and values of more than 128 bytes (for Bytes, keys of more
//     than 120 bytes) cost an allocation per operation.
//   - Update runs its function with the stripe lock held: a process
//     killed inside it is handled as any dead writer, but a function
//     that blocks stops the stripe's writers.
package dict
