//go:build linux

package faults_test

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// SIGBUS: a named segment truncated by another process while mapped, and a
// full file system. See the package documentation for what happens.

func init() {
	addRole("sigbus-victim", sigbusVictim)
	addRole("fsize-create", fsizeCreate)
	addRole("full-fs-writer", fullFSWriter)
}

// sigbusVictim: args segment path, "panic" or "fatal". It opens the
// segment and the Lock in it, says ready, waits until another process has
// truncated the file (watching its size with stat, which does not touch
// the mapping), then uses the Lock.
func sigbusVictim(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	l, err := lock.Open(seg, "l", nil)
	if err != nil {
		return err
	}
	size := seg.Size()
	proctest.SignalReady()
	for {
		fi, err := os.Stat(args[0])
		if err != nil {
			return err
		}
		if fi.Size() < size {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if args[1] == "panic" {
		debug.SetPanicOnFault(true)
		defer func() {
			r := recover()
			re, ok := r.(runtime.Error)
			if !ok {
				fmt.Printf("recovered a %T, not a runtime.Error: %v\n", r, r)
				return
			}
			addr := uintptr(0)
			if a, ok := re.(interface{ Addr() uintptr }); ok {
				addr = a.Addr()
			}
			fmt.Printf("recovered runtime.Error addr=%#x: %v\n", addr, re)
		}()
	}
	l.TryAcquire() // the first access to the truncated mapping
	fmt.Println("no fault")
	return nil
}

func TestTruncatedSegmentFaults(t *testing.T) {
	for _, mode := range []string{"panic", "fatal"} {
		t.Run(mode, func(t *testing.T) {
			name := proctest.TempName(t)
			seg, err := shm.Create(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer seg.Close()
			if _, err := lock.Create(seg, "l", nil); err != nil {
				t.Fatal(err)
			}
			path := seg.Path()
			c := proctest.Start(t, "sigbus-victim", path, mode)
			c.Expect(proctest.Ready, 30*time.Second)
			// Another process (this one) truncates the file under the
			// child's mapping. To nothing: a partial truncation does not
			// fault reliably, because tmpfs may back the file with a large
			// folio that the kernel cannot split; it then zeroes the part
			// past the end but leaves it mapped (seen on Linux 6.18).
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			r := c.Wait(30 * time.Second)
			t.Logf("child: exit code %d, stdout %q, stderr begins %q", r.Code, strings.TrimSpace(r.Stdout), tail(r.Stderr, 160))
			switch mode {
			case "panic":
				if r.Code != 0 || !strings.Contains(r.Stdout, "recovered runtime.Error addr=0x") {
					t.Fatalf("with SetPanicOnFault: code %d, stdout %q, stderr:\n%s", r.Code, r.Stdout, tail(r.Stderr, 2000))
				}
			case "fatal":
				if r.Code != 2 || !strings.Contains(r.Stderr, "unexpected fault address") ||
					!strings.Contains(r.Stderr, "signal SIGBUS") {
					t.Fatalf("without SetPanicOnFault: code %d, stdout %q, stderr:\n%s", r.Code, r.Stdout, tail(r.Stderr, 2000))
				}
			}
			// Truncated to nothing, it is no segment at all.
			if _, err := shm.Open(name, nil); !errors.Is(err, shm.ErrNotSegment) {
				t.Errorf("Open of the emptied segment: %v, want ErrNotSegment", err)
			}
			// Truncated to its first page, the header survives but the
			// objects do not: a process that opens it is told, before mapping.
			name2 := proctest.TempName(t)
			seg2, err := shm.Create(name2, nil)
			if err != nil {
				t.Fatal(err)
			}
			seg2.Close()
			if err := os.Truncate(seg2.Path(), 4096); err != nil {
				t.Fatal(err)
			}
			if _, err := shm.Open(name2, nil); !errors.Is(err, shm.ErrTruncated) {
				t.Errorf("Open of the truncated segment: %v, want ErrTruncated", err)
			}
			if _, err := shm.Inspect(seg2.Path()); !errors.Is(err, shm.ErrTruncated) {
				t.Errorf("Inspect of the truncated segment: %v, want ErrTruncated", err)
			}
		})
	}
}

// TestAnonymousSegmentCannotShrink: the memfd behind an anonymous segment is
// sealed, so the truncation above is refused.
func TestAnonymousSegmentCannotShrink(t *testing.T) {
	seg, err := shm.CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if err := seg.File().Truncate(0); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("truncating the memfd: %v, want EPERM", err)
	}
}

// fsizeCreate: args dir. With RLIMIT_FSIZE below the segment size (and
// SIGXFSZ ignored), Create's fallocate fails: Create must fail and leave no
// file behind.
func fsizeCreate(args []string) error {
	signal.Ignore(syscall.SIGXFSZ)
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 64 << 10, Max: 64 << 10}); err != nil {
		return err
	}
	_, err := shm.Create("seg", &shm.Options{Dir: args[0], Size: 1 << 20})
	if err == nil {
		return errors.New("Create succeeded beyond RLIMIT_FSIZE")
	}
	if !errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("Create: %v, want EFBIG", err)
	}
	if ents, _ := os.ReadDir(args[0]); len(ents) != 0 {
		return fmt.Errorf("Create failed but left %s behind", ents[0].Name())
	}
	fmt.Println("create failed:", err)
	return nil
}

func TestCreateReservesSpaceFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	c := proctest.Start(t, "fsize-create", dir)
	out := c.WaitOK()
	t.Log(strings.TrimSpace(out))
}

// mountSmallTmpfs mounts a tmpfs of size bytes on a fresh directory, or
// skips the test (reported as skipped, not passed) where mounting is not
// allowed.
func mountSmallTmpfs(t *testing.T, size int) string {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v): the full-file-system test needs root", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestFullFileSystem: on a 512 KiB tmpfs, a segment that does not fit
// fails at Create with ENOSPC and leaves no file; one that fits, created
// before the file system filled up, stays fully writable afterwards
// (fallocate reserved its pages), checked in a child so that a SIGBUS
// would fail the test cleanly.
func TestFullFileSystem(t *testing.T) {
	dir := mountSmallTmpfs(t, 512<<10)
	if _, err := shm.Create("big", &shm.Options{Dir: dir, Size: 1 << 20}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create beyond the file system: %v, want ENOSPC", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed Create left its file: %v", err)
	}
	seg, err := shm.Create("small", &shm.Options{Dir: dir, Size: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	n := (160 << 10) / 8
	if _, err := array.CreateRaw[int64](seg, "a", n, nil); err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the file system.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	if _, err := shm.Create("another", &shm.Options{Dir: dir, Size: 4096}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create on a full file system: %v, want ENOSPC", err)
	}
	c := proctest.Start(t, "full-fs-writer", filepath.Join(dir, "small"), fmt.Sprint(n))
	t.Log(strings.TrimSpace(c.WaitOK()))
}

// fullFSWriter: args segment path, n. Writes every element of RawArray
// "a": each page of the segment's object area is touched for the first
// time here, after the file system is full.
func fullFSWriter(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	a, err := array.OpenRaw[int64](seg, "a")
	if err != nil {
		return err
	}
	v := a.View()
	for i := range v {
		v[i] = int64(i)
	}
	for i := range v {
		if v[i] != int64(i) {
			return fmt.Errorf("element %d reads %d", i, v[i])
		}
	}
	fmt.Printf("wrote %d elements on a full file system\n", len(v))
	return nil
}
