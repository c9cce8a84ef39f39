package shm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
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

// openFd opens path with O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK added to flags:
// O_NONBLOCK so that a FIFO in the place of a segment cannot block the
// open (trustFile then refuses it before anything is read).
func openFd(path string, flags int, mode uint32) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, pathErr(err)
		}
		return os.NewFile(uintptr(fd), path), nil
	}
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

func create(path string, opts *Options) (_ *Segment, err error) {
	size, capacity, slots, err := opts.geometry()
	if err != nil {
		return nil, err
	}
	f, err := openFd(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, opts.mode())
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Remove the half-made file, unless another one took its
			// place in the meantime.
			var a, b unix.Stat_t
			if unix.Fstat(int(f.Fd()), &a) == nil && unix.Lstat(path, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
				if rerr := unix.Unlink(path); rerr != nil {
					err = errors.Join(err, fmt.Errorf("removing half-made file: %w", rerr))
				}
			}
			f.Close()
		}
	}()
	if err := unix.Fchmod(int(f.Fd()), opts.mode()); err != nil {
		return nil, fmt.Errorf("setting mode: %w", err)
	}
	if err := reserve(f, size); err != nil {
		return nil, err
	}
	return build(f, path, size, capacity, slots, opts.readyTimeout())
}

// reserve allocates size bytes of backing store for f, so that writing the
// mapping later cannot fail with SIGBUS for lack of space.
func reserve(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue // a signal (the Go scheduler's, often) interrupted it: what is done stays done
		case unix.EOPNOTSUPP:
			// The file system cannot reserve space: fall back to a sparse
			// file (see Caveats).
			if err := unix.Ftruncate(int(f.Fd()), size); err != nil {
				return fmt.Errorf("setting size %d: %w", size, err)
			}
			return nil
		}
		return fmt.Errorf("reserving %d bytes: %w", size, err)
	}
}

// build maps the fresh, zeroed file f, writes the header and publishes it.
func build(f *os.File, path string, size int64, capacity, slots int, ready time.Duration) (*Segment, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes: %w", size, err)
	}
	h := header{
		headerSize: headerSizeFor(capacity, slots),
		capacity:   capacity,
		slots:      slots,
		size:       size,
		creator:    os.Getpid(),
		created:    time.Now().UnixNano(),
	}
	var b [fixedLen]byte
	h.encode(b[:])
	copy(mem[offMagic+4:fixedLen], b[offMagic+4:])
	atomic.StoreUint64(u64(mem, offLock), 0)
	atomic.StoreUint64(u64(mem, offAlloc), uint64(h.headerSize))
	ro := h.regOffset()
	proc.InitTable(mem[ro:ro+int64(h.slots)*proc.SlotSize], h.slots)
	// Publishes the header: an opener that sees the magic sees the rest.
	atomic.StoreUint32(u32(mem, offMagic), Magic)
	return newSegment(f, path, mem, h, ready)
}

// newSegment joins the segment's process registry and returns the handle.
// On failure it unmaps mem; the caller still owns f.
func newSegment(f *os.File, path string, mem []byte, h header, ready time.Duration) (*Segment, error) {
	reg, err := proc.Attach(f, path, h.regOffset(), h.slots)
	if err != nil {
		if uerr := unix.Munmap(mem); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmapping: %w", uerr))
		}
		return nil, err
	}
	return &Segment{
		f:     f,
		path:  path,
		mem:   mem,
		m:     newMapping(mem, reg),
		hdr:   h,
		lock:  robust.New(u64(mem, offLock), reg, 0),
		reg:   reg,
		ready: ready,
	}, nil
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

// Open maps an existing named segment after validating its header.
//
// The file is opened with O_NOFOLLOW|O_NONBLOCK: a symbolic link in its
// place is an error, and a FIFO cannot block it. Before anything is read,
// fstat checks that it is a regular file (ErrNotSegment), owned by the
// caller's effective uid unless Options.AllowOtherUsers, and not writable
// by group or others beyond Options.Mode (ErrPermission). Before anything
// is mapped, Open checks, in this order, with pread: the magic
// (ErrNotSegment), the layout version (ErrVersion), the header checksum
// (ErrChecksum), the header's fields (ErrCorrupt) and the file size
// against the size in the header (ErrTruncated). A segment
// whose creator has not yet published its header fails with ErrNotSegment;
// OpenOrCreate waits for it instead. Options.Size is ignored.
func Open(name string, opts *Options) (*Segment, error) {
	path, err := Resolve(name, opts)
	if err != nil {
		return nil, err
	}
	f, err := openFd(path, unix.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: opening %s: %w", path, err)
	}
	if err := trustFile(f, opts); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: opening %s: %w", path, err)
	}
	s, err := attach(f, path, opts.readyTimeout())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: opening %s: %w", path, err)
	}
	return s, nil
}

// readHeader reads and validates the header of f without mapping it.
func readHeader(f *os.File) (header, []byte, error) {
	st, err := fileStat(f)
	if err != nil {
		return header{}, nil, err
	}
	var b [fixedLen]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return header{}, nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := parseHeader(b[:n], st.Size)
	return h, b[:n], err
}

// attach validates the header of f and maps the segment.
func attach(f *os.File, path string, ready time.Duration) (*Segment, error) {
	h, _, err := readHeader(f)
	if err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(h.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes: %w", h.size, err)
	}
	return newSegment(f, path, mem, h, ready)
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

func openOrCreate(path string, opts *Options) (*Segment, error) {
	deadline := futex.After(opts.readyTimeout())
	for {
		s, err := create(path, opts)
		if !errors.Is(err, ErrExist) {
			return s, err
		}
		f, err := openFd(path, unix.O_RDWR, 0)
		if errors.Is(err, ErrNotExist) {
			if time.Now().After(deadline) {
				return nil, err
			}
			continue // removed since: race to create again
		}
		if err != nil {
			return nil, err
		}
		if err := trustFile(f, opts); err != nil {
			f.Close()
			return nil, err
		}
		s, err = attachWait(f, path, opts.readyTimeout(), deadline)
		if err == errGone {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return s, nil
	}
}

// errGone says the file attachWait waited on was removed (its creator
// failed): the caller should start over.
var errGone = errors.New("shm: segment file removed while waiting")

// attachWait is attach for a file another process may still be creating:
// it waits until deadline for a published header.
func attachWait(f *os.File, path string, ready time.Duration, deadline time.Time) (*Segment, error) {
	pause := 100 * time.Microsecond
	for {
		_, b, err := readHeader(f)
		unpublished := b != nil && (len(b) < 4 || le.Uint32(b) == 0)
		if err == nil {
			return attach(f, path, ready)
		}
		// A header may be read torn while its creator publishes it: retry a
		// checksum mismatch too, until the deadline.
		if !unpublished && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrTruncated) {
			return nil, err
		}
		if unpublished && !samePath(f, path) {
			return nil, errGone
		}
		if time.Now().After(deadline) {
			if unpublished {
				return nil, fmt.Errorf("header not published within %v: %w", ready, ErrNotSegment)
			}
			return nil, err
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// samePath reports whether path still names the file f.
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Ino == b.Ino && a.Dev == b.Dev
}

// Remove deletes a named segment file. Mappings stay valid until closed.
// A missing file gives ErrNotExist.
func Remove(name string, opts *Options) error {
	path, err := Resolve(name, opts)
	if err != nil {
		return err
	}
	if err := unix.Unlink(path); err != nil {
		return fmt.Errorf("shm: removing %s: %w", path, pathErr(err))
	}
	return nil
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

func createAnonymous(size int64) (_ *Segment, err error) {
	size, capacity, slots, err := (&Options{Size: size}).geometry()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate(AnonymousName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	path := "memfd:" + AnonymousName
	f := os.NewFile(uintptr(fd), path)
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if err := reserve(f, size); err != nil {
		return nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return build(f, path, size, capacity, slots, DefaultReadyTimeout)
}

// OpenFile maps the segment behind an open file, such as an inherited memfd.
//
// The file must be a regular file. A memfd (any file without a name) must
// be sealed with F_SEAL_SHRINK and F_SEAL_GROW, as CreateAnonymous seals
// its own: otherwise whoever holds the descriptor could truncate it under
// the mapping, and OpenFile refuses it with ErrPermission. A named file is
// checked as Open checks it with default Options. The header is validated
// as by Open. OpenFile duplicates the descriptor: the caller still owns f
// and may close it at once; Close closes only the duplicate. Path reports
// f.Name().
func OpenFile(f *os.File) (*Segment, error) {
	if f == nil {
		return nil, fmt.Errorf("shm: opening file: nil *os.File: %w", ErrNotExist)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: opening %s: duplicating descriptor: %w", f.Name(), err)
	}
	nf := os.NewFile(uintptr(fd), f.Name())
	if err := trustFile(nf, nil); err != nil {
		nf.Close()
		return nil, fmt.Errorf("shm: opening %s: %w", f.Name(), err)
	}
	s, err := attach(nf, f.Name(), DefaultReadyTimeout)
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("shm: opening %s: %w", f.Name(), err)
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
