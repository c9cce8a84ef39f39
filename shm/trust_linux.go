package shm

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// A segment file is a trust boundary: whoever can write it can change what
// this process reads, and whoever can truncate it can kill this process
// with SIGBUS. So a file is checked before it is read or mapped:
//
//   - its type, with fstat on a descriptor opened O_NONBLOCK (a FIFO or a
//     device is never read: opening a FIFO for reading would block);
//   - for a file with a name (a link count above zero): its owner, which
//     must be the caller's effective uid unless Options.AllowOtherUsers,
//     and its mode, which must not let group or others write beyond
//     Options.Mode;
//   - for a memfd (or any file without a name): its seals, which must
//     include F_SEAL_SHRINK and F_SEAL_GROW, so no holder of the
//     descriptor can truncate it under the mapping.

// requiredSeals are the seals a file without a name must carry.
const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW

// fileStat returns the fstat of f, refusing anything but a regular file
// (tmpfs files and memfds are regular) with ErrNotSegment.
func fileStat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstat(int(f.Fd()), &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("fstat: %w", err)
		}
		break
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, fmt.Errorf("not a regular file (%v): %w", fileType(st.Mode), ErrNotSegment)
	}
	return st, nil
}

func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

// trustFile checks that f is a regular file this process may map safely
// under opts (see the comment at the top of this file). It reads nothing
// but the inode and, for a file without a name, its seals.
func trustFile(f *os.File, opts *Options) error {
	st, err := fileStat(f)
	if err != nil {
		return err
	}
	if st.Nlink == 0 {
		return checkSeals(f)
	}
	return checkOwner(st, opts)
}

// checkSeals refuses a file without a name that is not sealed against
// shrinking and growing.
func checkSeals(f *os.File) error {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("unnamed file without seals (F_GET_SEALS: %v): %w", err, ErrPermission)
	}
	if seals&requiredSeals != requiredSeals {
		return fmt.Errorf("memfd seals %#x lack F_SEAL_SHRINK|F_SEAL_GROW (a peer could truncate it): %w", seals, ErrPermission)
	}
	return nil
}

// checkOwner refuses a named file owned by another user (unless
// opts.AllowOtherUsers) or writable by group or others beyond opts.Mode.
func checkOwner(st unix.Stat_t, opts *Options) error {
	if euid := os.Geteuid(); int(st.Uid) != euid && (opts == nil || !opts.AllowOtherUsers) {
		return fmt.Errorf("file owned by uid %d, not by this process's uid %d (see Options.AllowOtherUsers): %w", st.Uid, euid, ErrPermission)
	}
	perm := st.Mode & 0o777
	if extra := perm & 0o022 &^ opts.mode(); extra != 0 {
		return fmt.Errorf("file mode %#o lets %s write it, beyond the mode %#o asked for (see Options.Mode): %w",
			perm, writers(extra), opts.mode(), ErrPermission)
	}
	return nil
}

func writers(bits uint32) string {
	switch bits {
	case 0o020:
		return "its group"
	case 0o002:
		return "others"
	}
	return "its group and others"
}
