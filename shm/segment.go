package shm

import (
	"errors"
	"os"
)

// MaxNameLen is the longest object name a directory entry holds.
const MaxNameLen = 47

var errUnimplemented = errors.New("shm: not implemented yet")

// Segment is an open, mapped segment. Close it when done.
type Segment struct {
	f    *os.File
	path string
	mem  []byte
}

// Create makes a new named segment, failing with ErrExist if it exists.
func Create(name string, opts *Options) (*Segment, error) { return nil, errUnimplemented }

// Open maps an existing named segment after validating its header.
func Open(name string, opts *Options) (*Segment, error) { return nil, errUnimplemented }

// OpenOrCreate opens the named segment, creating it if it does not exist.
func OpenOrCreate(name string, opts *Options) (*Segment, error) { return nil, errUnimplemented }

// Remove deletes a named segment file. Mappings stay valid until closed.
func Remove(name string, opts *Options) error { return errUnimplemented }

// CreateAnonymous makes a segment backed by a memfd, sealed against
// shrinking. Pass File() to a child through exec.Cmd.ExtraFiles.
func CreateAnonymous(size int64) (*Segment, error) { return nil, errUnimplemented }

// OpenFile maps the segment behind an open file, such as an inherited memfd.
func OpenFile(f *os.File) (*Segment, error) { return nil, errUnimplemented }

// File returns the segment's open file (for ExtraFiles).
func (s *Segment) File() *os.File { return s.f }

// Path returns the file path, or a description for anonymous segments.
func (s *Segment) Path() string { return s.path }

// Size returns the mapped size.
func (s *Segment) Size() int64 { return int64(len(s.mem)) }

// Close unmaps the segment and closes its file. It does not remove the file.
// Closing twice returns nil. Objects obtained from the segment must not be
// used after Close.
func (s *Segment) Close() error { return errUnimplemented }

// Alloc creates the named object: it reserves a zeroed, ObjectAlign-aligned
// region of spec.Size bytes, calls init on it while the entry is marked
// initializing, and publishes the entry ready when init returns nil. A name
// that is taken (ready or initializing) gives ErrExist: of two processes
// creating one name at once, one wins and the other gets ErrExist.
func (s *Segment) Alloc(spec Spec, init func(mem []byte) error) ([]byte, error) {
	return nil, errUnimplemented
}

// Lookup finds the named object, checks kind, kind version, fingerprint
// and (when spec.Size is nonzero) size, and returns its memory. It waits up
// to Options.ReadyTimeout for an object that is still initializing.
func (s *Segment) Lookup(spec Spec) ([]byte, error) { return nil, errUnimplemented }

// Objects lists the directory.
func (s *Segment) Objects() ([]Object, error) { return nil, errUnimplemented }
