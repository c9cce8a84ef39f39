// Package shm manages segments: files mapped MAP_SHARED by many processes,
// with a header and a directory of named objects that mpipc's primitives are
// placed in.
//
// A named segment is a file, by default in /dev/shm ([Create], [Open],
// [OpenOrCreate], [Remove]). A name is a plain file name looked up in
// Options.Dir, or an absolute path used as is ([Resolve]); it can never
// climb out of its directory. An anonymous segment is a sealed memfd
// ([CreateAnonymous]) that a child started with os/exec inherits through
// exec.Cmd.ExtraFiles and maps with [OpenFile].
//
// Objects are placed by name, as Boost.Interprocess's construct<T>(name)
// and find<T>(name) do: [Segment.Alloc] reserves a zeroed, 64-byte aligned
// region, runs the object's initializer and publishes the entry "ready";
// [Segment.Lookup] finds it, checks its kind, kind version, type
// fingerprint and size, and waits a bounded time for one still being
// initialized. [Segment.Destroy] removes an object nobody has open and
// frees its space for the next ones (see "Destroying objects").
//
// # Binary layout
//
// All integers are little-endian; offsets are from the start of the file.
// The words marked atomic change after creation and are read and written
// only with atomic instructions.
//
//	offset  size  field
//	0       4     magic 0x6773706d ("mpsg" in file order); stored last, atomically: it publishes the header
//	4       4     layout version (3)
//	8       4     header size H: the offset of the first object = align64(A + 8*W*N)
//	12      4     directory entries N = 2 * MaxObjects (2..131072, even): a hash table kept at most half full
//	16      8     total size S of the segment, header included (the file may be longer)
//	24      8     creator's pid, as it saw itself (display only)
//	32      8     creation time, Unix nanoseconds
//	40      4     directory entry size (96)
//	44      4     directory offset (192)
//	48      4     process registry slots P (1..65535)
//	52      4     process registry offset R = align64(192 + 96*N)
//	56      8     checksum: FNV-1a 64 over bytes 0..55
//	64      8     segment lock word (atomic; internal/robust), alone on its cache line
//	128     8     reserved, zero (version 2 kept an allocation offset here)
//	192     96*N  directory entries
//	R       32*P  process registry: one slot record per process (see below)
//	A       8*W*N attach table, A = align64(R + 32*P), W = ceil(P/64): one
//	              row of W words (atomic) per directory entry, one bit per
//	              registry slot (see "Destroying objects")
//	H       S-H   objects, each at a 64-aligned offset
//
// FNV-1a 64: h = 14695981039346656037; for each byte c: h ^= c; h *= 1099511628211 (mod 2^64).
//
// A directory entry (96 bytes, at 192 + 96*i):
//
//	offset  size  field
//	0       4     state (atomic): 0 never used, 1 initializing, 2 ready, 3 being destroyed, 4 free again
//	4       2     kind (see Kind)
//	6       2     kind version
//	8       8     type fingerprint (0 for untyped objects)
//	16      8     object offset from the start of the segment
//	24      8     object size in bytes
//	32      8     creator's registry identity: slot | generation<<32
//	40      4     creator's pid, as it saw itself (display only)
//	44      4     incarnation (atomic): advanced by every Alloc that takes the entry
//	48      48    name, NUL-padded (at most 47 bytes, so always NUL-terminated)
//
// An entry's fields are written before its state; a reader that loads
// state "ready" (an acquire) may read them, and they do not change until
// the entry is freed by Destroy. A reader in another language: check
// magic, version and checksum, then for each entry with state 2 read the
// fields and check H <= offset, offset+size <= S.
//
// Free space is not recorded anywhere: it is the part of [H, S) that no
// entry in use (states 1, 2 and 3) covers. Alloc takes the lowest gap
// that fits (first fit); entries in use must not overlap (Alloc fails
// with [ErrCorrupt] if they do, or if one lies outside [H, S)).
//
// # Processes
//
// Each segment has a process registry (see [Registry]): P slots of 32
// bytes after the directory, one per process that has the segment open.
// A process claims a slot when it first opens the segment — every handle
// on one file in one process shares it — by taking an open file
// description lock (fcntl F_OFD_SETLK) on the byte at 2^62 + slot - 1 of
// the file, through a private, close-on-exec open of the file of its own
// (the path again for a named segment, /proc/self/fd/N for a memfd, so
// that a descriptor inherited from a parent is never the one locked). The
// kernel drops that lock when the process dies, in whatever pid namespace
// it runs; a stopped process keeps it. Each claim advances the slot's
// generation, and every owner record of every object names (slot,
// generation): a dead process is never confused with the next one in its
// slot, and no pid or /proc is consulted. A slot record holds, for
// display only: generation, pid as the process saw itself, pid-namespace
// inode, effective uid and when it attached (mpipc stat lists them).
// Opening a segment whose registry is full fails with ErrRegistryFull.
//
// A child handed an anonymous segment's memfd needs /proc/self/fd to get
// a description of its own; without /proc, its registry is blind (it can
// prove nobody dead, and others see its identity as foreign): give such a
// child a named segment, or mount /proc.
//
// # Validation
//
// Open, OpenFile and [Inspect] validate without touching a mapping: fstat
// (a regular file, or [ErrNotSegment]; for Open, OpenOrCreate and
// OpenFile also its owner and mode, or a memfd's seals, or
// [ErrPermission]), then pread of the header, then in this order magic ([ErrNotSegment]),
// version ([ErrVersion]), checksum ([ErrChecksum]), the fields themselves
// ([ErrCorrupt]: a hostile writer can recompute a checksum), and the file
// size against S ([ErrTruncated]). Only then is the file mapped. Every
// directory entry is bounds-checked, overflow-safe, before it is used;
// a bad one gives [ErrCorrupt], never an out-of-range slice.
//
// # Concurrent creation and crashes
//
// Allocation scans the directory and reserves an entry and its space under
// the segment lock, a robust lock word: when a process dies inside the
// locked part of Alloc or Destroy, the next process to take the lock
// (Alloc, Destroy, or a Lookup that meets an entry being destroyed) takes
// it over, repairs the directory — it frees entries left initializing by
// dead creators and makes an entry left being destroyed ready again — and
// goes on. Of two processes allocating one name at once, exactly one wins;
// the other gets [ErrExist] (it does not attach: call Lookup for that). An
// entry whose creator died while initializing it (outside the lock) is
// freed, with its space, by the next Alloc or the next repair; until then
// Lookup reports [ErrNotReady] and says that the creator has died.
//
// Every change to the allocation is one atomic store of an entry's state,
// so a process killed at any instruction leaves either the object or the
// free space, never a leak or a space handed out twice: the entry's fields
// are written while it is free (a crash there leaves it free), the store
// of "initializing" takes the name and the space at once, and the store of
// "free" gives both back.
//
// # Destroying objects
//
// [Segment.Destroy] removes a ready object from the directory and frees its
// space; a later Lookup of the name gives [ErrNotExist], and the name can
// be created again. It refuses with [ErrInUse], naming the pids, while a
// live process — this one included — has the object open;
// [Segment.DestroyForce] does not ask (and mpipc destroy -f calls it).
//
// "Open" is decided with the attach table: a process sets its bit (its
// registry slot's) in an object's row when Alloc or Lookup gives it the
// object, and clears it when it has given back every such hold: every
// package's Create and Open hands the hold to the handle it returns
// ([Keep] with the object's memory), and the hold goes when the garbage
// collector has collected the handle; a caller of Alloc or Lookup that
// keeps no handle gives its hold back with [Segment.Release]. A bit whose
// slot is not held by a live process counts for nothing (a SIGKILLed
// holder blocks nothing), and a process that claims a slot clears the
// bits its dead predecessor left. This process's own holds are counted in
// its memory, not read from the table.
//
// Destroy, under the segment lock, marks the entry "being destroyed"
// (state 3), then reads the row: a holder found makes it ready again and
// Destroy fails. Lookup sets its bit, then reads the state again: Dekker's
// handshake on sequentially consistent atomics, so either Destroy sees the
// bit or Lookup sees the entry going and looks again (an entry being
// destroyed makes Lookup wait for the segment lock). Destroy of an object
// still initializing fails with [ErrNotReady], unless its creator is dead.
//
// A handle used after a forced destroy works on memory the next object
// created in the segment may be given: the two corrupt each other. Without
// force that cannot happen to a handle of a live process.
//
// Of processes racing [OpenOrCreate], one creates the file with O_EXCL and
// the others open it and wait up to Options.ReadyTimeout for the header to
// be published (the magic is stored last). If the creator fails and removes
// the file, the waiters start over.
//
// # Lifetime: use after Close
//
// Object handles point straight into the mapping, and their operations
// check nothing before they touch it (an uncontended Lock is one atomic
// instruction). So that using an object after its segment's Close can
// never fault, Close does not unmap a segment while object handles placed
// in it are reachable: every package's Create and Open ties its handle to
// the mapping with [Keep], a reference count released by
// runtime.AddCleanup when the handle becomes unreachable, and the last
// reference unmaps. After Close the objects keep working on the shared
// memory; the Segment's own Alloc, Lookup and Objects return [ErrClosed].
// This costs nothing per operation (BenchmarkLockUncontended is unchanged,
// within noise, at about 17.7 ns/op); its price is that a closed segment's
// address space — and a removed file's pages — stay until the handles are
// dropped and collected. The byte slices Alloc and Lookup return are not
// handles: they must not be used after Close.
//
// # Caveats
//
//   - The file size is fixed at creation. A process that can write the
//     file can still ftruncate a named segment under others' mappings, and
//     then their accesses fault with SIGBUS. Anonymous segments are sealed
//     against this (and OpenFile refuses a memfd without F_SEAL_SHRINK and
//     F_SEAL_GROW); named ones rely on the file's owner and mode, which
//     Open and OpenOrCreate check before reading the file: a file owned by
//     another user (unless Options.AllowOtherUsers) or writable by group
//     or others beyond Options.Mode is refused with [ErrPermission].
//   - On a file system without fallocate, Create falls back to a sparse
//     file, and running out of space later raises SIGBUS.
//   - A process that dies between creating the file and publishing its
//     header leaves a file that Open and OpenOrCreate reject with
//     ErrNotSegment; remove it.
//   - Space is reused first fit, without compaction: objects of many
//     sizes created and destroyed in random order can fragment the object
//     area, and Alloc fails with ErrFull while the total free space would
//     suffice. Finding the gap sorts the objects in use (N log N in the
//     directory's size) under the segment lock.
//   - A handle's hold on its object lasts until the garbage collector has
//     collected the handle: a process that dropped a handle and calls
//     Destroy at once may be refused (ErrInUse, "this process holds…");
//     runtime.GC then retry, or DestroyForce when sure. A caller of Alloc
//     or Lookup without Keep holds the object until Release, or until this
//     process's last mapping of the segment goes.
//   - The header is large: the directory has two 96-byte entries per
//     object allowed (it is a hash table kept half full), the registry 32
//     bytes per process slot, and the attach table P/8 bytes per directory
//     entry. With the defaults (64 objects, 1024 slots) that is about 60
//     KiB; at the largest directory and registry, about 1 GiB. A segment
//     of a few objects and a few processes wants MaxObjects and MaxProcs
//     set to fit; Size is the whole segment, header included. A process with a blind registry (an inherited memfd
//     without /proc) cannot record its holds: Destroy does not see them.
//   - The segment lock is waited on for at most 10 s: a process stopped
//     (SIGSTOP) inside Alloc or Destroy makes others' Alloc and Destroy fail (wrapping
//     futex.ErrTimeout), not hang.
//   - Lookup probes the hashed directory (a few entries, about 80 ns
//     among 10,000 objects); Alloc still visits every entry, and sorts the
//     objects in use to find a gap, under the segment lock. Look objects up
//     once and keep the handle, not once per operation.
//   - A Segment that is dropped without Close keeps its mapping: byte
//     slices from Alloc and Lookup may still point into it, so there is no
//     finalizer that unmaps.
//   - After Close, the mapping (and the memory of a removed segment file)
//     is freed only when the garbage collector has found every object
//     handle placed in it unreachable; drop the handles, and call
//     runtime.GC if the memory must go at once.
package shm
