//go:build linux

package shm

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

func init() {
	proctest.Register("stale-attach", func(args []string) error {
		s, err := Open(args[0], nil)
		if err != nil {
			return err
		}
		defer s.Close()
		proctest.SignalReady()
		time.Sleep(time.Hour) // until killed
		return nil
	})
}

// createClosed creates a segment and closes it at once: nobody is attached.
func createClosed(t *testing.T) string {
	t.Helper()
	name := proctest.TempName(t)
	s, err := Create(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(DefaultDir, name)
}

func wantStale(t *testing.T, path string, grace time.Duration, want bool) {
	t.Helper()
	got, err := StaleAfter(path, grace)
	if err != nil || got != want {
		t.Fatalf("StaleAfter(%s, %v) = %v, %v; want %v, nil", filepath.Base(path), grace, got, err, want)
	}
}

func TestStaleLiveThenKilled(t *testing.T) {
	path := createClosed(t)
	wantStale(t, path, 0, true) // created and closed: nobody attached

	c := proctest.Start(t, "stale-attach", path)
	c.Expect(proctest.Ready, 0)
	wantStale(t, path, 0, false)
	if got, err := Stale(path); err != nil || got {
		t.Fatalf("Stale with a live child: %v, %v", got, err)
	}
	// A stopped process keeps its slot: still in use.
	if err := c.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wantStale(t, path, 0, false)
	killAndReap(t, c)
	wantStale(t, path, 0, true)
}

func TestStaleGrace(t *testing.T) {
	path := createClosed(t)
	wantStale(t, path, time.Hour, false) // too young to call stale
	wantStale(t, path, 0, true)
	if got, err := Stale(path); err != nil || got {
		t.Fatalf("Stale of a segment created just now: %v, %v; want false within StaleGrace", got, err)
	}
}

func TestStaleOwnHandleIsInUse(t *testing.T) {
	_, path := mustCreate(t, nil)
	wantStale(t, path, 0, false)
}

// A lock byte held with a zeroed generation in the table still counts: a
// corrupting peer cannot hide a live process.
func TestStaleIgnoresGenerations(t *testing.T) {
	s, path := mustCreate(t, nil)
	patch(t, path, s.hdr.regOffset(), make([]byte, s.hdr.slots*32))
	wantStale(t, path, 0, false)
}

func TestStaleNotSegments(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros") // an unpublished header
	if err := os.WriteFile(zeros, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	wantStale(t, zeros, 0, false)
	empty := filepath.Join(dir, "empty") // created, not yet sized
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantStale(t, empty, 0, false)

	foreign := filepath.Join(dir, "foreign")
	if err := os.WriteFile(foreign, []byte("hello, world\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := StaleAfter(foreign, 0)
	if got {
		t.Fatal("foreign file called stale")
	}
	wantErr(t, err, ErrNotSegment)

	_, err = StaleAfter(filepath.Join(dir, "missing"), 0)
	wantErr(t, err, fs.ErrNotExist)

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = StaleAfter(fifo, 0)
	wantErr(t, err, ErrNotSegment)

	link := filepath.Join(dir, "link")
	path := createClosed(t)
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if got, err := StaleAfter(link, 0); got || err == nil {
		t.Fatalf("symbolic link: %v, %v; want an error", got, err)
	}

	// A damaged header: never stale.
	patch(t, path, offChecksum, []byte{1, 2, 3})
	got, err = StaleAfter(path, 0)
	if got {
		t.Fatal("damaged segment called stale")
	}
	wantErr(t, err, ErrChecksum)
}
