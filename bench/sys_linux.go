package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func createShared(size int) (*shared, error) {
	f, err := os.CreateTemp("/dev/shm", "mpipc-bench-*")
	if err != nil {
		return nil, fmt.Errorf("creating the benchmark file: %w", err)
	}
	defer f.Close()
	total := headerSize + size
	if err := f.Truncate(int64(total)); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("sizing %s: %w", f.Name(), err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("mapping %s: %w", f.Name(), err)
	}
	for i := range mem { // fault the pages in up front, as the C anchors do
		mem[i] = 0
	}
	return &shared{path: f.Name(), mem: mem}, nil
}

func openShared(path string) (*shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return &shared{path: path, mem: mem}, nil
}

func (s *shared) close() {
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
	os.Remove(s.path)
}

// now is CLOCK_MONOTONIC in ns, comparable across processes.
func now() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

func seqpacketPair() ([]*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair(AF_UNIX, SOCK_SEQPACKET): %w", err)
	}
	return []*os.File{os.NewFile(uintptr(fds[0]), "seqpacket0"), os.NewFile(uintptr(fds[1]), "seqpacket1")}, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
