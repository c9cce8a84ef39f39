package shm

import (
	"fmt"
	"time"
)

// StaleGrace is how old a segment must be before Stale may call it stale:
// it covers the moment between Create publishing the header and the
// creator claiming its registry slot, with a wide margin for a creator
// that is descheduled or stopped in between.
const StaleGrace = time.Minute

// Stale reports whether the segment file at path is stale: a published,
// valid mpipc segment that no live process is attached to and that was
// created at least StaleGrace ago. It is StaleAfter(path, StaleGrace).
func Stale(path string) (bool, error) { return StaleAfter(path, StaleGrace) }

// StaleAfter is Stale with a grace period of the caller's choosing.
//
// How "in use" is decided. Liveness is decided as the library decides it
// everywhere: path is opened read-only (O_NOFOLLOW|O_NONBLOCK, regular
// files only) on a description of its own, which holds no locks, and every
// slot of the segment's process registry is asked with F_OFD_GETLK
// whether its lock byte is held. Every slot is asked, whatever its
// recorded generation says, so that a record overwritten by a corrupting
// peer cannot hide a live process. A process attached to the segment
// holds its slot's lock from Create or Open until its last handle is
// released, whatever pid namespace it runs in; a stopped process holds it
// too. A lock held by the calling process itself (through its own Open)
// counts as held: a segment the caller has open is in use.
//
// A segment nobody holds a slot in is still counted as in use when:
//   - its header is not published (the file is shorter than the magic, or
//     the magic is still zero): its creator may be between creating the
//     file and publishing the header, and such a file cannot be told from
//     a foreign file of zeros. StaleAfter returns false and a nil error;
//     a creator that died there leaves a file only "mpipc rm -f" removes.
//   - its header says it was created less than grace ago, or in the
//     future: its creator may be between publishing the header and
//     claiming its slot. A grace of zero or less skips this check.
//
// A segment that was created and closed without any other process
// attaching is stale once its grace has passed, like one whose processes
// were all killed: its creator's slot is no longer held.
//
// A file that is not an mpipc segment (ErrNotSegment), or whose header is
// damaged (ErrVersion, ErrChecksum, ErrCorrupt, ErrTruncated), is never
// stale: StaleAfter returns false and the error.
//
// The answer is a snapshot: a process may open the segment right after
// StaleAfter returns true. A remover that unlinks the file then leaves
// that process on a file no later opener finds; only remove stale
// segments of a name nobody is about to open.
func StaleAfter(path string, grace time.Duration) (bool, error) {
	stale, err := staleAfter(path, grace)
	if err != nil {
		return false, fmt.Errorf("shm: checking %s: %w", path, err)
	}
	return stale, nil
}
