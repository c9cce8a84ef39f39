package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
)

// MaxNameLen is the longest object name a directory entry holds.
const MaxNameLen = nameField - 1

// MaxSegmentNameLen is the longest relative segment name (a file name).
const MaxSegmentNameLen = 255

// DefaultReadyTimeout is how long Lookup and OpenOrCreate wait for another
// process to finish initializing, when Options.ReadyTimeout is zero.
const DefaultReadyTimeout = time.Second

// lockTimeout bounds the wait for the segment lock. The lock is only held
// for a scan of the directory, so a longer wait means a stopped holder or a
// hostile lock word. A variable for tests.
var lockTimeout = 10 * time.Second

// Segment is an open, mapped segment. Close it when done.
//
// Obtain one with Create, Open, OpenOrCreate, CreateAnonymous or OpenFile;
// the zero Segment is not usable. Alloc, Lookup, Objects and Info are safe
// for concurrent use by many goroutines and by many processes mapping the
// same file; Close must not run concurrently with them.
type Segment struct {
	f     *os.File
	path  string
	mem   []byte   // nil after Close
	m     *mapping // the mapping's reference count (see Keep); nil after Close
	hdr   header
	lock  robust.Mutex
	reg   *proc.Registry // this process's slot in the segment's registry
	ready time.Duration  // Lookup's wait for initializing objects

	closeMu sync.Mutex
}

// Resolve returns the file path of the named segment. A name that starts
// with '/' is an absolute path and is used as is (Options.Dir is ignored);
// any other name must be a plain file name — not empty, not "." or "..",
// without '/' or NUL, at most MaxSegmentNameLen bytes — and is looked up in
// Options.Dir (default DefaultDir). Anything else is ErrInvalidName.
func Resolve(name string, opts *Options) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("shm: segment name %q: contains NUL: %w", name, ErrInvalidName)
	}
	if filepath.IsAbs(name) {
		return name, nil
	}
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 || len(name) > MaxSegmentNameLen {
		return "", fmt.Errorf("shm: segment name %q: not a plain file name: %w", name, ErrInvalidName)
	}
	dir := DefaultDir
	if opts != nil && opts.Dir != "" {
		dir = opts.Dir
	}
	return filepath.Join(dir, name), nil
}

func (o *Options) readyTimeout() time.Duration {
	if o == nil || o.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return o.ReadyTimeout
}

func (o *Options) mode() uint32 {
	if o == nil || o.Mode == 0 {
		return 0o600
	}
	return uint32(o.Mode.Perm())
}

// geometry returns the size, directory capacity and registry slots of a
// new segment.
func (o *Options) geometry() (size int64, capacity, slots int, err error) {
	size, capacity, slots = defaultSize, DefaultMaxObjects, DefaultMaxProcs
	if o != nil {
		if o.MaxProcs < 0 || o.MaxProcs > MaxProcs {
			return 0, 0, 0, fmt.Errorf("MaxProcs %d not in [0, %d]: %w", o.MaxProcs, MaxProcs, ErrInvalidSize)
		}
		if o.MaxProcs > 0 {
			slots = o.MaxProcs
		}
		if o.Size < 0 {
			return 0, 0, 0, fmt.Errorf("size %d: %w", o.Size, ErrInvalidSize)
		}
		if o.Size > 0 {
			size = o.Size
		}
		if o.MaxObjects < 0 || o.MaxObjects > MaxMaxObjects {
			return 0, 0, 0, fmt.Errorf("MaxObjects %d not in [0, %d]: %w", o.MaxObjects, MaxMaxObjects, ErrInvalidSize)
		}
		if o.MaxObjects > 0 {
			capacity = o.MaxObjects
		}
	}
	// The directory is a hash table kept at most half full (see find).
	capacity *= 2
	size = max(size, headerSizeFor(capacity, slots))
	size = alignUp(size, int64(os.Getpagesize()))
	if size < 0 || uint64(size) > uint64(maxMapping) {
		return 0, 0, 0, fmt.Errorf("size too large: %w", ErrInvalidSize)
	}
	return size, capacity, slots, nil
}

// maxMapping is the largest segment this process can map.
const maxMapping = 1<<62 - 1

// pathErr maps the errno of a failed open or unlink to the package's
// sentinels, keeping the errno in the chain.
func pathErr(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return ErrNotExist
	case errors.Is(err, syscall.EEXIST):
		return ErrExist
	case errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("is a symbolic link (not followed): %w", err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

// Create makes a new named segment, failing with ErrExist if it exists.
//
// The file is created with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC and mode
// Options.Mode (default 0600, applied exactly with fchmod). Its space,
// Options.Size rounded up to a page (and to at least the header), is
// reserved with fallocate: a full file system fails Create, and the
// half-made file is removed. See Resolve for the names allowed.
func Create(name string, opts *Options) (*Segment, error) {
	path, err := Resolve(name, opts)
	if err != nil {
		return nil, err
	}
	s, err := create(path, opts)
	if err != nil {
		return nil, fmt.Errorf("shm: creating %s: %w", path, err)
	}
	return s, nil
}

// Registry returns this segment's process registry, in which this process
// holds a slot while it has the segment open: pass it as
// Options.Registry to objects placed with Init/Attach in memory that the
// same processes share. Nil after Close, and for a nil Segment.
func (s *Segment) Registry() *Registry {
	if s == nil {
		return nil
	}
	return s.reg
}

// Processes lists the processes that have claimed a slot in the segment's
// registry, alive or dead, as this process sees them.
func (s *Segment) Processes() []Process {
	if s.reg == nil {
		return nil
	}
	return s.reg.Inspect()
}

// OpenOrCreate opens the named segment, creating it if it does not exist.
//
// It is safe against races: when several processes call it at once, one
// creates the segment and the others open it, waiting up to
// Options.ReadyTimeout (default 1 s) for the creator to publish the header.
// If the header stays unpublished that long (its creator died, or the file
// is not a segment), the error wraps ErrNotSegment. Options.Size and
// Options.MaxObjects apply only if this call creates the segment.
func OpenOrCreate(name string, opts *Options) (*Segment, error) {
	path, err := Resolve(name, opts)
	if err != nil {
		return nil, err
	}
	s, err := openOrCreate(path, opts)
	if err != nil {
		return nil, fmt.Errorf("shm: opening or creating %s: %w", path, err)
	}
	return s, nil
}

// AnonymousName is the name of the memfd behind an anonymous segment, as
// /proc/PID/maps and /proc/PID/fd show it ("/memfd:mpipc").
const AnonymousName = "mpipc"

// CreateAnonymous makes a segment backed by a memfd, sealed against
// shrinking. Pass File() to a child through exec.Cmd.ExtraFiles.
//
// The memfd is created with MFD_CLOEXEC|MFD_ALLOW_SEALING (ExtraFiles
// clears close-on-exec in the child), its space reserved with fallocate,
// and sealed with F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL: no process can
// truncate it under another's mapping. The directory has DefaultMaxObjects
// entries; size is rounded up as in Create (0 means 1 MiB).
func CreateAnonymous(size int64) (*Segment, error) {
	s, err := createAnonymous(size)
	if err != nil {
		return nil, fmt.Errorf("shm: creating anonymous segment: %w", err)
	}
	return s, nil
}

// File returns the segment's open file (for ExtraFiles), or nil after
// Close.
func (s *Segment) File() *os.File { return s.f }

// Path returns the file path, or a description for anonymous segments.
func (s *Segment) Path() string { return s.path }

// Size returns the mapped size, zero after Close.
func (s *Segment) Size() int64 { return int64(len(s.mem)) }

// Close releases this process's handle on the segment: it closes the file
// and unmaps the segment, unless object handles placed in it (by the
// Create and Open functions of mpipc's packages) are still reachable: the
// mapping then stays until the garbage collector has found the last of
// them unreachable, so that using an object after Close works on the
// shared memory and never faults (see Keep). Byte slices returned by Alloc
// and Lookup are not handles: do not use them after Close. Alloc, Lookup
// and Objects fail with ErrClosed after Close. Close does not remove the
// file. Closing twice returns nil.
func (s *Segment) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	var errs []error
	if s.m != nil {
		if err := s.m.release(); err != nil {
			errs = append(errs, fmt.Errorf("unmapping: %w", err))
		}
		s.m, s.mem = nil, nil
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			errs = append(errs, err)
		}
		s.f = nil
	}
	s.lock = robust.Mutex{}
	s.reg = nil // released with the mapping's last reference
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shm: closing %s: %w", s.path, err)
	}
	return nil
}
