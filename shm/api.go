package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/mpipc/mpipc/internal/proc"
)

// DefaultDir is where named segments live unless Options.Dir says otherwise.
const DefaultDir = "/dev/shm"

// ObjectAlign is the alignment of every object placed in a segment.
const ObjectAlign = 64

// Errors. Each is returned wrapped with context; test with errors.Is.
var (
	// ErrNotExist is returned when a segment or a named object does not
	// exist. errors.Is(err, fs.ErrNotExist) holds too.
	ErrNotExist = notExist{}
	// ErrExist is returned when creating a segment or object whose name is
	// taken. errors.Is(err, fs.ErrExist) holds too.
	ErrExist = exist{}
	// ErrNotSegment is returned when a file does not start with the mpipc
	// segment magic.
	ErrNotSegment = errors.New("shm: not an mpipc segment")
	// ErrVersion is returned when a segment has a layout version this
	// package does not support.
	ErrVersion = errors.New("shm: unsupported segment layout version")
	// ErrChecksum is returned when the header's fixed fields do not match
	// their checksum.
	ErrChecksum = errors.New("shm: header checksum mismatch")
	// ErrTruncated is returned when the file is shorter than its header says.
	ErrTruncated = errors.New("shm: segment file is truncated")
	// ErrKindMismatch is returned when a named object is of another kind, or
	// another version of its kind.
	ErrKindMismatch = errors.New("shm: object kind mismatch")
	// ErrTypeMismatch is returned when a typed object was created with
	// another element type.
	ErrTypeMismatch = errors.New("shm: object type mismatch")
	// ErrFull is returned when the segment has no room for an object, or
	// its directory has no free entry.
	ErrFull = errors.New("shm: segment full")
	// ErrInvalidName is returned for a segment or object name that is
	// empty, too long, or not a plain file name.
	ErrInvalidName = errors.New("shm: invalid name")
	// ErrCorrupt is returned when shared state cannot have been written by
	// mpipc: a directory entry or object header out of bounds, an
	// impossible counter. Every package of mpipc uses it.
	ErrCorrupt = errors.New("mpipc: corrupt shared state")
	// ErrNotReady is returned when a named object stays in the
	// initializing state longer than Options.ReadyTimeout.
	ErrNotReady = errors.New("shm: object still initializing")
	// ErrClosed is returned by operations on a closed segment.
	ErrClosed = errors.New("shm: segment closed")
	// ErrPermission is returned when a segment file is not trusted: it is
	// owned by another user (see Options.AllowOtherUsers), group or others
	// may write it beyond Options.Mode, or it is a memfd not sealed against
	// shrinking and growing. It also wraps the kernel's EACCES and EPERM
	// when opening a file. errors.Is(err, fs.ErrPermission) holds too.
	ErrPermission error = permission{}
	// ErrUnsupported is returned by every constructor of mpipc where
	// shared-memory segments cannot work: on systems other than Linux
	// (no futex shared between processes, no open file description
	// locks), and on big-endian processors (segments are little-endian).
	// errors.Is(err, errors.ErrUnsupported) holds too.
	ErrUnsupported = fmt.Errorf("mpipc: shared-memory IPC needs little-endian Linux (this is %s/%s): %w",
		runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
	// ErrInUse is returned by Segment.Destroy when a live process, this
	// one included, has the object open.
	ErrInUse = errors.New("shm: object in use")
	// ErrInvalidSize is returned for a negative segment size, an object
	// size that is not positive, or a directory capacity out of range.
	ErrInvalidSize = errors.New("shm: invalid size")
)

// permission is the type of ErrPermission.
type permission struct{}

func (permission) Error() string        { return "shm: segment file not trusted" }
func (permission) Is(target error) bool { return target == fs.ErrPermission }

type notExist struct{}

func (notExist) Error() string        { return "shm: does not exist" }
func (notExist) Is(target error) bool { return target == fs.ErrNotExist }

type exist struct{}

func (exist) Error() string        { return "shm: already exists" }
func (exist) Is(target error) bool { return target == fs.ErrExist }

// Kind says what an object in a segment is.
type Kind uint16

// Object kinds. The numbers are part of the file format: never reuse one.
const (
	KindLock Kind = 1 + iota
	KindRLock
	KindSemaphore
	KindBoundedSemaphore
	KindCondition
	KindEvent
	KindBarrier
	KindValue
	KindArray
	KindQueue
	KindJoinableQueue
	KindPipe
	KindBytes // raw bytes, for tests and callers that manage their own layout
	KindDict  // a shared hash map (package dict), typed or bytes-keyed
	// KindSimpleQueue is a ringbuf.SimpleQueue (a Queue with the
	// simple flag; Python's multiprocessing.SimpleQueue).
	KindSimpleQueue
)

var kindNames = [...]string{
	KindLock: "lock", KindRLock: "rlock", KindSemaphore: "semaphore",
	KindBoundedSemaphore: "bounded-semaphore", KindCondition: "condition",
	KindEvent: "event", KindBarrier: "barrier", KindValue: "value",
	KindArray: "array", KindQueue: "queue", KindJoinableQueue: "joinable-queue",
	KindPipe: "pipe", KindBytes: "bytes", KindDict: "dict",
	KindSimpleQueue: "simple-queue",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + itoa(int(k)) + ")"
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// Options configure Create, Open and friends. The zero value (or nil) means
// the defaults.
type Options struct {
	// Dir is the directory of named segments. Default DefaultDir. Ignored
	// for anonymous segments.
	Dir string
	// Size is the total size of a new segment in bytes, header included,
	// rounded up to a page. Default 1 MiB. Ignored by Open.
	Size int64
	// Mode is the permission of a new segment file. Default 0600. Open and
	// OpenOrCreate refuse, with ErrPermission, an existing file that group
	// or others may write unless Mode lets them too.
	Mode os.FileMode
	// AllowOtherUsers lets Open and OpenOrCreate attach to a segment file
	// owned by another user. By default such a file is refused with
	// ErrPermission: its owner can change every word this process reads,
	// and truncate the file to kill this process with SIGBUS. Set it only
	// to share segments between users who trust each other (usually with
	// a Mode such as 0660 and a common group).
	AllowOtherUsers bool
	// ReadyTimeout bounds how long Lookup waits for an object another
	// process is still initializing, and how long OpenOrCreate waits for
	// another process to publish the header of a segment it is creating.
	// Default 1 s.
	ReadyTimeout time.Duration
	// MaxObjects is the directory capacity of a new segment: how many
	// named objects it can hold. Default DefaultMaxObjects (64), at most
	// MaxMaxObjects. The directory is a hash table with two entries of 96
	// bytes (and two attach rows) per object, so that a lookup stays a few
	// entries long however many objects there are. Ignored by
	// Open.
	MaxObjects int
	// MaxProcs is the size of a new segment's process registry: how many
	// processes can have it open at once (every handle on one file in one
	// process counts once). Default DefaultMaxProcs (1024), at most
	// MaxProcs. Each slot takes 32 bytes of the header. One more process
	// fails to open the segment with ErrRegistryFull. Ignored by Open.
	MaxProcs int
}

// DefaultMaxProcs is the process registry size of a segment when
// Options.MaxProcs is zero.
const DefaultMaxProcs = proc.DefaultSlots

// MaxProcs is the largest process registry a segment may have.
const MaxProcs = proc.MaxSlots

// Registry is a process registry: the table of the processes attached to
// a segment, each holding a slot through a lock the kernel drops when the
// process dies, in any pid namespace and without /proc (see the package
// documentation, "Processes"). Every owner record of every object names a
// registry slot and its generation, never a pid.
//
// A segment provides one (Segment.Registry); objects created or opened in
// it use it. An object placed in memory you own (Init/Attach) is given
// one through its Options.Registry: pass the registry of a segment that
// every process sharing that memory also opens (a small segment of its
// own will do). Without one, an object uses this process's blind
// registry, which never declares a process dead: a lock whose holder died
// is never taken over, and waiters time out or are cancelled instead.
type Registry = proc.Registry

// Process is one slot of a segment's registry, for display.
type Process = proc.Slot

// ErrRegistryFull is returned when a segment is opened by more processes
// than its registry has slots (Options.MaxProcs).
var ErrRegistryFull = proc.ErrFull

// Spec names and describes an object to place in, or find in, a segment.
type Spec struct {
	Name        string // object name: 1..MaxNameLen bytes, no NUL
	Kind        Kind
	KindVersion uint16 // the layout version of the kind
	Fingerprint uint64 // element type fingerprint for typed objects, else 0
	// Size is the number of bytes the object needs. Alloc requires it;
	// Lookup checks it when nonzero.
	Size int64
}

// Object describes a directory entry, for inspection.
type Object struct {
	Name        string
	Kind        Kind
	KindVersion uint16
	Fingerprint uint64
	Offset      int64
	Size        int64
	Ready       bool
	Creator     int     // pid of the creating process, as it saw itself (display only)
	CreatorID   proc.ID // the creator's registry identity
}

// WithRegistry is the body of every object package's Options.in: a copy
// of *o (the zero options when o is nil) whose registry — the field field
// points at — is seg's when the caller named none. Create and Open pass
// their options through it, so that objects in a segment always name its
// registry.
func WithRegistry[O any](o *O, seg *Segment, field func(*O) **Registry) *O {
	var c O
	if o != nil {
		c = *o
	}
	if p := field(&c); *p == nil {
		*p = seg.Registry()
	}
	return &c
}
