//go:build linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	proctest.Register("attach", func(args []string) error {
		seg, err := shm.Open(args[0], nil)
		if err != nil {
			return err
		}
		defer seg.Close()
		proctest.SignalReady()
		time.Sleep(time.Hour) // until killed
		return nil
	})
}

// staleDir makes a directory with three segments: "live" with a child
// attached, "killed" whose only attached process was SIGKILLed, and
// "never\x1b" that was created and closed without anyone attaching (its
// name has an escape, which the output must not pass through), plus a
// foreign file. The child is killed when the test ends.
func staleDir(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, n := range []string{"live", "killed", "never\x1b"} {
		seg, err := shm.Create(n, &shm.Options{Dir: dir, Size: 128 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := seg.Close(); err != nil {
			t.Fatal(err)
		}
	}
	live := proctest.Start(t, "attach", filepath.Join(dir, "live"))
	killed := proctest.Start(t, "attach", filepath.Join(dir, "killed"))
	live.Expect(proctest.Ready, 0)
	killed.Expect(proctest.Ready, 0)
	t.Cleanup(live.Kill)
	killed.Kill()
	select {
	case <-killed.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("killed child not reaped")
	}
	foreignFile(t, dir)
	return dir
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRmStale(t *testing.T) {
	dir := staleDir(t)
	// Within the default grace every segment is young: none is removed.
	rc, out, e := mpipc(t, "rm", "-stale", dir)
	if rc != exitOK || !strings.Contains(out, "no stale segments") || e != "" {
		t.Fatalf("rm -stale of young segments: rc %d, %q, %q", rc, out, e)
	}
	rc, out, e = mpipc(t, "rm", dir, "--stale", "-grace", "0")
	if rc != exitOK || e != "" {
		t.Fatalf("rm -stale -grace 0: rc %d, %q, %q", rc, out, e)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"removed " + filepath.Join(dir, "killed"), "removed " + name(filepath.Join(dir, "never\x1b"))}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("rm -stale output %q, want %q", lines, want)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("output passes an escape through: %q", out)
	}
	for n, want := range map[string]bool{"live": true, "killed": false, "never\x1b": false, "notes.txt": true} {
		if got := exists(t, filepath.Join(dir, n)); got != want {
			t.Errorf("after rm -stale: %q exists %v, want %v", n, got, want)
		}
	}
	// The live segment is still usable by its process, and ls says so.
	if rc, out, _ := mpipc(t, "ls", dir); rc != exitOK || !strings.Contains(out, "live") {
		t.Errorf("ls after rm -stale: rc %d, %q", rc, out)
	}
	// Nothing left to remove.
	if rc, out, _ := mpipc(t, "rm", "-stale", "-grace=0", dir); rc != exitOK || !strings.Contains(out, "no stale segments") {
		t.Errorf("second rm -stale: rc %d, %q", rc, out)
	}
}

func TestRmStaleUsage(t *testing.T) {
	dir := t.TempDir()
	if rc, _, e := mpipc(t, "rm", "-stale", "-f", dir); rc != exitUsage || !strings.Contains(e, "-f and -stale") {
		t.Errorf("rm -stale -f: rc %d, %q", rc, e)
	}
	if rc, _, e := mpipc(t, "rm", "-stale", dir, dir); rc != exitUsage || !strings.Contains(e, "at most one directory") {
		t.Errorf("rm -stale DIR DIR: rc %d, %q", rc, e)
	}
	if rc, _, e := mpipc(t, "rm", "-stale", filepath.Join(dir, "missing")); rc != exitFail || !strings.Contains(e, "reading directory") {
		t.Errorf("rm -stale of a missing directory: rc %d, %q", rc, e)
	}
}
