//go:build !linux

package shm

import (
	"fmt"
	"io/fs"
	"os"
)

// Segments need Linux: every constructor fails with ErrUnsupported.

func create(path string, opts *Options) (*Segment, error) { return nil, ErrUnsupported }

func openOrCreate(path string, opts *Options) (*Segment, error) { return nil, ErrUnsupported }

func createAnonymous(size int64) (*Segment, error) { return nil, ErrUnsupported }

// Open fails with ErrUnsupported.
func Open(name string, opts *Options) (*Segment, error) {
	return nil, fmt.Errorf("shm: opening %s: %w", name, ErrUnsupported)
}

// OpenFile fails with ErrUnsupported.
func OpenFile(f *os.File) (*Segment, error) {
	return nil, fmt.Errorf("shm: opening file: %w", ErrUnsupported)
}

// Remove fails with ErrUnsupported.
func Remove(name string, opts *Options) error {
	return fmt.Errorf("shm: removing %s: %w", name, ErrUnsupported)
}

func inspect(path string) (Info, error) { return Info{Path: path}, ErrUnsupported }

func fileTrust(f *os.File) (owner int, mode fs.FileMode, unsafe error) {
	return -1, 0, ErrUnsupported
}

func munmap(b []byte) error { return ErrUnsupported }
