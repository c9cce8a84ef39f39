package shm

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proc"
)

// fileTrust returns the owner and mode of f and why Open with default
// Options would refuse it, or nil.
func fileTrust(f *os.File) (owner int, mode fs.FileMode, unsafe error) {
	st, err := fileStat(f)
	if err != nil {
		return -1, 0, err
	}
	if st.Nlink == 0 {
		unsafe = checkSeals(f)
	} else {
		unsafe = checkOwner(st, nil)
	}
	return int(st.Uid), fs.FileMode(st.Mode & 0o777), unsafe
}

func inspect(path string) (Info, error) {
	if !littleEndian {
		return Info{Path: path}, ErrUnsupported
	}
	f, err := openFd(path, unix.O_RDONLY, 0)
	if err != nil {
		return Info{Path: path}, err
	}
	defer f.Close()
	file := Info{Path: path}
	file.Owner, file.Mode, file.Unsafe = fileTrust(f)
	h, _, err := readHeader(f) // refuses a FIFO or device before reading

	if err != nil {
		return file, err
	}
	b := make([]byte, h.headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return file, fmt.Errorf("reading directory: %w", err)
	}
	ro := h.regOffset()
	procs := proc.Inspect(int(f.Fd()), b[ro:ro+int64(h.slots)*proc.SlotSize], h.slots)
	inf := infoFrom(path, h, b, procs)
	inf.Owner, inf.Mode, inf.Unsafe = file.Owner, file.Mode, file.Unsafe
	return inf, inf.Err
}
