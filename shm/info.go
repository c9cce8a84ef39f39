package shm

import (
	"fmt"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
)

// Info describes a segment, for inspection (mpipc ls and stat).
type Info struct {
	Path       string
	Version    int       // layout version
	Size       int64     // total size in bytes, header included
	HeaderSize int64     // bytes before the first object
	Used       int64     // bytes in use: the header and every valid object in use, each rounded up to ObjectAlign
	MaxObjects int       // how many objects the directory holds
	NumObjects int       // directory entries in use, corrupt ones included
	CreatorPid int       // pid of the process that created the segment, as it saw itself
	Created    time.Time // when the segment was created
	LockHolder int       // pid holding the segment lock, 0 if free
	MaxProcs   int       // process registry slots
	// Processes are the registry slots ever claimed, with whether each is
	// held now (Alive): the processes attached to the segment, and the
	// dead or departed ones whose slot nobody has claimed since.
	Processes []Process
	Attached  int      // how many processes have the segment open now (as ipcs's nattch)
	Objects   []Object // the valid entries in use, in directory order
	// Owner and Mode are the file's owner uid and permission bits.
	Owner int
	Mode  fs.FileMode
	// Unsafe says why Open with default Options would refuse the file (it
	// wraps ErrPermission): another owner, group or others may write it,
	// or a memfd lacks its seals. Nil if the file is safe to map.
	Unsafe error
	// Err is the first problem found in the directory or the mutable
	// header words (it wraps ErrCorrupt), or nil.
	Err error
}

// infoFrom decodes the header bytes b (headerSize bytes at least). procs
// are the registry's slots as seen by the caller.
func infoFrom(path string, h header, b []byte, procs []Process) Info {
	inf := Info{
		Path:       path,
		Version:    LayoutVersion,
		Size:       h.size,
		HeaderSize: h.headerSize,
		MaxObjects: h.capacity / 2,
		MaxProcs:   h.slots,
		CreatorPid: h.creator,
		Created:    unixTime(h.created),
		Processes:  procs,
	}
	for _, p := range procs {
		if p.Alive {
			inf.Attached++
		}
	}
	inf.Objects, inf.NumObjects, inf.Err = listObjects(b, h)
	w := atomic.LoadUint64(u64(b, offLock))
	if !robust.Valid(w) && inf.Err == nil {
		inf.Err = fmt.Errorf("segment lock word %#x: %w", w, ErrCorrupt)
	}
	if id := robust.Decode(w).Holder; id.Slot >= 1 && int(id.Slot) <= h.slots {
		inf.LockHolder = int(le.Uint32(b[h.regOffset()+int64(id.Slot-1)*proc.SlotSize+4:]))
	}
	inf.Used = h.headerSize
	for _, o := range inf.Objects {
		inf.Used += alignUp(o.Size, ObjectAlign)
	}
	return inf
}

// Info returns a snapshot of the segment's header and directory. After
// Close it reports the path and the fixed header fields only.
func (s *Segment) Info() Info {
	if s.mem == nil {
		return Info{Path: s.path, Version: LayoutVersion, Size: s.hdr.size, HeaderSize: s.hdr.headerSize,
			MaxObjects: s.hdr.capacity / 2, MaxProcs: s.hdr.slots, CreatorPid: s.hdr.creator, Created: unixTime(s.hdr.created)}
	}
	inf := infoFrom(s.path, s.hdr, s.mem[:s.hdr.headerSize], s.Processes())
	inf.Owner, inf.Mode, inf.Unsafe = fileTrust(s.f)
	return inf
}

// Inspect validates the header of the segment file at path exactly as Open
// does, without mapping it, and describes the segment. path is used as
// given (not resolved against DefaultDir; see Resolve) and opened
// read-only with O_NOFOLLOW|O_NONBLOCK, and anything but a regular file is
// refused (ErrNotSegment) before it is read: a FIFO cannot block Inspect.
// Inspect reads files that Open would refuse as unsafe (it never maps
// them); Info.Unsafe says why. The header and directory are read with one
// pread: a snapshot that may be torn if another process allocates at the
// same moment. If the directory has a corrupt entry, Inspect returns the
// Info it could read together with an error wrapping ErrCorrupt.
func Inspect(path string) (Info, error) {
	inf, err := inspect(path)
	if err != nil {
		return inf, fmt.Errorf("shm: inspecting %s: %w", path, err)
	}
	return inf, nil
}
