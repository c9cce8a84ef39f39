//go:build !linux

package bench

import (
	"os"
	"time"

	"github.com/mpipc/mpipc/shm"
)

// The benchmarks need Linux, as the primitives they measure do.

func createShared(size int) (*shared, error) { return nil, shm.ErrUnsupported }

func openShared(path string) (*shared, error) { return nil, shm.ErrUnsupported }

func (s *shared) close() {}

var start = time.Now()

// now is a monotonic clock in ns (never compared across processes here:
// no worker process can start).
func now() uint64 { return uint64(time.Since(start)) }

func seqpacketPair() ([]*os.File, error) { return nil, shm.ErrUnsupported }

func isTerminal(f *os.File) bool { return false }
