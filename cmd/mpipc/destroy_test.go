//go:build linux

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

func init() {
	// Creates the segment args[0] with a lock args[1], and exits: the
	// test process then holds nothing in it.
	proctest.Register("mklock", func(args []string) error {
		seg, err := shm.Create(args[0], &shm.Options{Size: 128 << 10})
		if err != nil {
			return err
		}
		if _, err := lock.Create(seg, args[1], nil); err != nil {
			return err
		}
		return seg.Close()
	})
}

func TestDestroy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	proctest.Start(t, "mklock", path, "l").WaitOK()

	holder := proctest.Start(t, "holdlock", path, "l")
	holder.Expect(proctest.Ready, 10*time.Second)
	rc, _, e := mpipc(t, "destroy", path, "l")
	if rc != exitFail || !strings.Contains(e, "in use") || !strings.Contains(e, fmt.Sprint(holder.Pid())) {
		t.Fatalf("destroy of a lock another process has open: rc %d, stderr %q", rc, e)
	}
	holder.Kill()
	holder.Wait(10 * time.Second)
	rc, out, e := mpipc(t, "destroy", path, "l")
	if rc != exitOK || out != "destroyed l\n" {
		t.Fatalf("destroy after its holder was killed: rc %d, stdout %q, stderr %q", rc, out, e)
	}
	rc, _, e = mpipc(t, "destroy", path, "l")
	if rc != exitFail || !strings.Contains(e, "does not exist") {
		t.Fatalf("destroy of a destroyed lock: rc %d, stderr %q", rc, e)
	}
	seg, err := shm.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := lock.Open(seg, "l", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("lock.Open after destroy: %v, want ErrNotExist", err)
	}

	// This process holds a new l (the verb runs in this process): only
	// -f destroys it.
	l, err := lock.Create(seg, "l", nil)
	if err != nil {
		t.Fatalf("re-create after destroy: %v", err)
	}
	rc, _, e = mpipc(t, "destroy", path, "l")
	if rc != exitFail || !strings.Contains(e, "this process") {
		t.Fatalf("destroy of a lock this process holds: rc %d, stderr %q", rc, e)
	}
	if rc, out, e := mpipc(t, "destroy", path, "l", "-f"); rc != exitOK || out != "destroyed l\n" {
		t.Fatalf("destroy -f: rc %d, stdout %q, stderr %q", rc, out, e)
	}
	runtime.KeepAlive(l)

	if rc, _, _ := mpipc(t, "destroy", path); rc != exitUsage {
		t.Fatalf("destroy without an object: rc %d, want %d", rc, exitUsage)
	}
}
