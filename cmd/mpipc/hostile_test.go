//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// mpipcWithin runs the command like mpipc, but fails the test if it has
// not returned within 5 s (a FIFO opened for reading blocks forever);
// unblock is then called to free it.
func mpipcWithin(t *testing.T, unblock func(), args ...string) (rc int, stdout, stderr string) {
	t.Helper()
	type result struct {
		rc       int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.rc, r.out, r.err = mpipc(t, args...)
		done <- r
	}()
	select {
	case r := <-done:
		return r.rc, r.out, r.err
	case <-time.After(5 * time.Second):
		unblock()
		t.Fatalf("mpipc %q still blocked after 5 s", args)
	}
	return
}

func makeFifo(t *testing.T, dir string) (string, func()) {
	t.Helper()
	path := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	}
}

// TestFIFONeverBlocks: a FIFO named like a segment makes stat, rm -f and
// ls -a report it, not hang.
func TestFIFONeverBlocks(t *testing.T) {
	dir, _ := newSegment(t)
	fifo, unblock := makeFifo(t, dir)
	rc, _, e := mpipcWithin(t, unblock, "stat", fifo)
	if rc != exitFail || !strings.Contains(e, "not a regular file") {
		t.Errorf("stat of a FIFO: rc %d, stderr %q", rc, e)
	}
	rc, out, e := mpipcWithin(t, unblock, "ls", "-a", dir)
	if rc != exitOK || !strings.Contains(out, "fifo") || !strings.Contains(out, "seg1") {
		t.Errorf("ls -a with a FIFO: rc %d, stdout %q, stderr %q", rc, out, e)
	}
	rc, _, e = mpipcWithin(t, unblock, "rm", fifo)
	if rc != exitFail || !strings.Contains(e, "not removed") {
		t.Errorf("rm of a FIFO: rc %d, stderr %q", rc, e)
	}
	rc, out, e = mpipcWithin(t, unblock, "rm", "-f", fifo)
	if rc != exitOK || !strings.Contains(out, "removed") {
		t.Errorf("rm -f of a FIFO: rc %d, stdout %q, stderr %q", rc, out, e)
	}
	if _, err := os.Lstat(fifo); !os.IsNotExist(err) {
		t.Errorf("rm -f left the FIFO: %v", err)
	}
}

// TestUnsafeFlagged: ls and stat show the owner and mode, and flag a
// segment that others may write; stat does not map it.
func TestUnsafeFlagged(t *testing.T) {
	dir, path := newSegment(t)
	rc, out, _ := mpipc(t, "stat", path)
	if rc != exitOK || !strings.Contains(out, "owner     ") || !strings.Contains(out, "-rw-------") || strings.Contains(out, "UNSAFE") {
		t.Errorf("stat of a safe segment: rc %d\n%s", rc, out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, out, _ = mpipc(t, "ls", dir)
	if !strings.Contains(out, "-rw-rw-rw- UNSAFE") || !strings.Contains(out, "unsafe:") {
		t.Errorf("ls does not flag a 0666 segment:\n%s", out)
	}
	rc, out, e := mpipc(t, "stat", path)
	if rc != exitFail || !strings.Contains(out, "UNSAFE") || !strings.Contains(out, "not mapped") || !strings.Contains(e, "unsafe:") {
		t.Errorf("stat of a 0666 segment: rc %d\n%s\nstderr %s", rc, out, e)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the foreign-owner half is skipped")
		return
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, out, _ = mpipc(t, "ls", dir)
	if !strings.Contains(out, "UNSAFE") || !strings.Contains(out, "owned by uid 65534") {
		t.Errorf("ls does not flag a foreign-owned segment:\n%s", out)
	}
}

// TestNamesEscaped: a segment file name and an object name with ESC and a
// newline reach the output escaped, on one row.
func TestNamesEscaped(t *testing.T) {
	dir := t.TempDir()
	evil := "evil\x1b[31m\nNAME\tforged\xff"
	seg, err := shm.Create(evil, &shm.Options{Dir: dir, Size: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Create(seg, "o\x1b]0;pwned\x07\nrow", nil); err != nil {
		t.Fatal(err)
	}
	seg.Close()
	check := func(what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\x07") || strings.IndexByte(out, 0xff) >= 0 || strings.Contains(out, "\nNAME\t") || strings.Contains(out, "\nrow") {
			t.Errorf("%s prints a name raw:\n%q", what, out)
		}
	}
	rc, out, e := mpipc(t, "ls", dir)
	check("ls", out+e)
	if rc != exitOK || !strings.Contains(out, fmt.Sprintf("%q", evil)) {
		t.Errorf("ls: rc %d, want the name as %q:\n%s", rc, evil, out)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("ls printed %d lines, want a header and one row:\n%s", n, out)
	}
	rc, out, e = mpipc(t, "stat", filepath.Join(dir, evil))
	check("stat", out+e)
	if rc != exitOK || !strings.Contains(out, `"o\x1b]0;pwned\a\nrow"`) {
		t.Errorf("stat: rc %d, want the object name quoted:\n%s\n%s", rc, out, e)
	}
	_, out, e = mpipc(t, "stat", filepath.Join(dir, evil), "nope")
	check("stat of a missing object", out+e)
	rc, out, e = mpipc(t, "rm", filepath.Join(dir, evil))
	check("rm", out+e)
	if rc != exitOK {
		t.Errorf("rm: rc %d, %s", rc, e)
	}
}
