//go:build linux

package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/internal/proctest"
)

// nobody is the uid the foreign-owner tests give a file.
const nobody = 65534

// needRoot skips a test that must create a file owned by another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to create a file owned by another uid (os.Chown)")
	}
}

func wantPermission(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrPermission) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("%s: %v, want ErrPermission (and fs.ErrPermission)", what, err)
	}
}

// TestForeignOwnerRefused: a segment file that another user created (here
// with mode 0666, as an attacker would) is refused by Open and
// OpenOrCreate, and accepted with AllowOtherUsers and a Mode that allows
// its group and others to write.
func TestForeignOwnerRefused(t *testing.T) {
	needRoot(t)
	name := proctest.TempName(t)
	s, err := Create(name, &Options{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(DefaultDir, name)
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err = Open(name, nil)
	wantPermission(t, "Open", err)
	_, err = OpenOrCreate(name, nil)
	wantPermission(t, "OpenOrCreate", err)
	// Allowing another owner does not allow writers beyond Mode.
	_, err = Open(name, &Options{AllowOtherUsers: true})
	wantPermission(t, "Open with AllowOtherUsers, Mode 0600", err)
	// Mode alone does not allow another owner.
	_, err = Open(name, &Options{Mode: 0o666})
	wantPermission(t, "Open with Mode 0666", err)
	inf, err := Inspect(path)
	if err != nil {
		t.Fatalf("Inspect reads a foreign file: %v", err)
	}
	if inf.Owner != nobody || inf.Mode != 0o666 {
		t.Errorf("Inspect: owner %d mode %v, want %d -rw-rw-rw-", inf.Owner, inf.Mode, nobody)
	}
	wantPermission(t, "Inspect's Unsafe", inf.Unsafe)
}

// TestSharedBetweenUsers: AllowOtherUsers lets two users share a segment
// through a group-writable file.
func TestSharedBetweenUsers(t *testing.T) {
	needRoot(t)
	name := proctest.TempName(t)
	opts := &Options{Mode: 0o660}
	s, err := Create(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Alloc(bytesSpec, func(m []byte) error { m[0] = 42; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(DefaultDir, name), nobody, os.Getegid()); err != nil {
		t.Fatal(err)
	}
	shared := &Options{Mode: 0o660, AllowOtherUsers: true}
	for _, open := range []func(string, *Options) (*Segment, error){Open, OpenOrCreate} {
		s2, err := open(name, shared)
		if err != nil {
			t.Fatalf("opening a shared segment with AllowOtherUsers: %v", err)
		}
		mem, err := s2.Lookup(bytesSpec)
		if err != nil || mem[0] != 42 {
			t.Fatalf("Lookup: %v", err)
		}
		s2.Close()
	}
}

// TestWritableByOthersRefused: a file of this user that group or others may
// write is refused unless Options.Mode allows it (no root needed).
func TestWritableByOthersRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666, 0o622} {
		t.Run(fmt.Sprintf("%#o", mode), func(t *testing.T) {
			s, path := mustCreate(t, nil)
			s.Close()
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, nil)
			wantPermission(t, "Open", err)
			_, err = OpenOrCreate(path, nil)
			wantPermission(t, "OpenOrCreate", err)
			s2, err := Open(path, &Options{Mode: mode})
			if err != nil {
				t.Fatalf("Open with Mode %#o: %v", mode, err)
			}
			s2.Close()
			// Readable by others is not a reason to refuse.
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			s3, err := Open(path, nil)
			if err != nil {
				t.Fatalf("Open of a 0644 file: %v", err)
			}
			s3.Close()
		})
	}
}

// TestOpenFileNamedForeign: OpenFile checks a named file as Open does.
func TestOpenFileNamedForeign(t *testing.T) {
	s, path := mustCreate(t, nil)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFile(s.File())
	wantPermission(t, "OpenFile of a 0666 file", err)
}

// TestPathErrPermission: the kernel's refusal to open a file is
// ErrPermission too. (Root bypasses file modes, so the errno is fed in.)
func TestPathErrPermission(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EACCES, syscall.EPERM} {
		err := pathErr(e)
		wantPermission(t, e.Error(), err)
		if !errors.Is(err, e) {
			t.Errorf("pathErr(%v) lost the errno: %v", e, err)
		}
	}
}

// within runs f and fails the test if it has not returned within d (a FIFO
// opened for reading without O_NONBLOCK would block forever). unblock, if
// not nil, is called on timeout to free the stuck goroutine.
func within(t *testing.T, d time.Duration, what string, unblock func(), f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		if unblock != nil {
			unblock()
		}
		t.Fatalf("%s still blocked after %v", what, d)
	}
}

// mkfifo makes a FIFO in a fresh directory and returns its path and a
// function that opens it for writing (which unblocks a reader stuck in open).
func mkfifo(t *testing.T) (string, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	}
}

// TestFIFORefused: a FIFO named like a segment is refused before it is
// read, by Inspect, Open, OpenOrCreate and OpenFile, without blocking.
func TestFIFORefused(t *testing.T) {
	path, unblock := mkfifo(t)
	within(t, 5*time.Second, "Inspect of a FIFO", unblock, func() {
		_, err := Inspect(path)
		wantErr(t, err, ErrNotSegment)
	})
	within(t, 5*time.Second, "Open of a FIFO", unblock, func() {
		_, err := Open(path, nil)
		wantErr(t, err, ErrNotSegment)
	})
	within(t, 5*time.Second, "OpenOrCreate of a FIFO", unblock, func() {
		_, err := OpenOrCreate(path, &Options{ReadyTimeout: 100 * time.Millisecond})
		wantErr(t, err, ErrNotSegment)
	})
	within(t, 5*time.Second, "OpenFile of a FIFO", unblock, func() {
		f, err := os.OpenFile(path, os.O_RDWR, 0) // O_RDWR does not block on a FIFO
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		_, err = OpenFile(f)
		wantErr(t, err, ErrNotSegment)
	})
}

// TestDeviceRefused: a character device is not a segment.
func TestDeviceRefused(t *testing.T) {
	_, err := Open("/dev/zero", nil)
	wantErr(t, err, ErrNotSegment)
	_, err = Inspect("/dev/zero")
	wantErr(t, err, ErrNotSegment)
}

// memfdSegment returns a memfd holding a copy of a valid segment, sealed
// with seals (0: not sealed at all).
func memfdSegment(t *testing.T, seals int) *os.File {
	t.Helper()
	s, path := mustCreate(t, &Options{Size: 1 << 16})
	if _, err := s.Alloc(bytesSpec, func(m []byte) error { m[0] = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.MemfdCreate("peer", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd:peer")
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestUnsealedMemfdRefused: a memfd that is not sealed against shrinking and
// growing is refused by OpenFile; with both seals it is accepted.
func TestUnsealedMemfdRefused(t *testing.T) {
	for _, seals := range []int{0, unix.F_SEAL_SHRINK, unix.F_SEAL_GROW, unix.F_SEAL_SEAL} {
		f := memfdSegment(t, seals)
		_, err := OpenFile(f)
		wantPermission(t, fmt.Sprintf("OpenFile of a memfd sealed %#x", seals), err)
	}
	f := memfdSegment(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
	s, err := OpenFile(f)
	if err != nil {
		t.Fatalf("OpenFile of a sealed memfd: %v", err)
	}
	defer s.Close()
	if mem, err := s.Lookup(bytesSpec); err != nil || mem[0] != 7 {
		t.Fatalf("Lookup: %v", err)
	}
	if inf := s.Info(); inf.Unsafe != nil {
		t.Errorf("Info of a sealed memfd: Unsafe %v", inf.Unsafe)
	}
}

// roleUnsealed is the receiving process of TestUnsealedMemfdTruncatedByPeer:
// it opens the memfd passed as fd 3; if that succeeds it says so, waits
// for the peer to truncate the file, and touches the object.
func roleUnsealed([]string) error {
	s, err := OpenFile(proctest.ChildFile(0))
	if err != nil {
		fmt.Printf("refused permission=%v\n", errors.Is(err, ErrPermission))
		return nil
	}
	fmt.Println("opened")
	time.Sleep(500 * time.Millisecond) // the peer truncates the file now
	mem, err := s.Lookup(bytesSpec)
	if err != nil {
		return err
	}
	fmt.Println("read", mem[0])
	return nil
}

// TestUnsealedMemfdTruncatedByPeer: a peer hands another process a valid
// segment in an unsealed memfd and truncates it; the receiver gets an
// error from OpenFile instead of dying of SIGBUS later.
func TestUnsealedMemfdTruncatedByPeer(t *testing.T) {
	f := memfdSegment(t, 0)
	c := proctest.StartOpts(t, "unsealed", proctest.Options{Files: []*os.File{f}})
	line := c.Line(10 * time.Second)
	if line == "opened" {
		if err := unix.Ftruncate(int(f.Fd()), 0); err != nil {
			t.Fatal(err)
		}
	}
	r := c.Wait(10 * time.Second)
	if r.Signal != 0 || r.Code != 0 {
		t.Fatalf("receiver ended with signal %v code %d (first line %q): %s", r.Signal, r.Code, line, r.Stderr)
	}
	if line != "refused permission=true" {
		t.Fatalf("receiver said %q, want it refused with ErrPermission; output %s", line, strings.TrimSpace(r.Stdout))
	}
}

// TestUnnamedFileRefused: a file without a name that is not a sealed memfd
// (here an O_TMPFILE) is refused by OpenFile: whoever holds it could
// truncate it.
func TestUnnamedFileRefused(t *testing.T) {
	for _, dir := range []string{DefaultDir, os.TempDir()} {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Logf("%s: O_TMPFILE not supported (%v)", dir, err)
			continue
		}
		f := os.NewFile(uintptr(fd), "tmpfile")
		_, err = OpenFile(f)
		f.Close()
		wantPermission(t, "OpenFile of an O_TMPFILE in "+dir, err)
	}
}
