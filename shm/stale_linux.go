package shm

import (
	"fmt"
	"time"

	"github.com/mpipc/mpipc/internal/proc"
	"golang.org/x/sys/unix"
)

func staleAfter(path string, grace time.Duration) (bool, error) {
	f, err := openFd(path, unix.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h, b, err := readHeader(f) // refuses a FIFO or device before reading
	if err != nil {
		if b != nil && (len(b) < 4 || le.Uint32(b) == 0) {
			return false, nil // unpublished: its creator may be initializing it
		}
		return false, err
	}
	if grace > 0 {
		if age := time.Since(unixTime(h.created)); age < grace {
			return false, nil
		}
	}
	table := make([]byte, int64(h.slots)*proc.SlotSize)
	if _, err := f.ReadAt(table, h.regOffset()); err != nil {
		return false, fmt.Errorf("reading process registry: %w", err)
	}
	// proc.Inspect asks the lock of every slot with a nonzero generation;
	// make them all nonzero in this private copy so that every slot is
	// asked.
	for i := 0; i < h.slots; i++ {
		le.PutUint32(table[i*proc.SlotSize:], 1)
	}
	for _, p := range proc.Inspect(int(f.Fd()), table, h.slots) {
		if p.Alive {
			return false, nil
		}
	}
	return true, nil
}
