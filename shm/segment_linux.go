package shm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
)

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
	if err == nil && !littleEndian {
		reg.Release()
		err = ErrUnsupported
	}
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
		m:     newMapping(mem, reg, h),
		hdr:   h,
		lock:  robust.New(u64(mem, offLock), reg, 0),
		reg:   reg,
		ready: ready,
	}, nil
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

// munmap unmaps a segment's memory (the last reference's release).
func munmap(b []byte) error { return unix.Munmap(b) }
