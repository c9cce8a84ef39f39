//go:build linux

package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// TestStatCounters: stat -counters shows the calling process's counters.
// The verb runs inside the test process here, so a timeout this process
// provoked on its own handle shows up; for the mpipc binary they are zero.
func TestStatCounters(t *testing.T) {
	dir := t.TempDir()
	seg, err := shm.Create("seg1", &shm.Options{Dir: dir, Size: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	l, err := lock.Create(seg, "mu", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.AcquireTimeout(time.Millisecond); ok || err != nil {
		t.Fatalf("AcquireTimeout of a held lock: %v, %v", ok, err)
	}
	path := seg.Path()

	rc, out, e := mpipc(t, "stat", "-json", "-counters", path, "mu")
	if rc != exitOK || e != "" {
		t.Fatalf("stat -json -counters: rc %d, %q", rc, e)
	}
	lines := strings.SplitN(out, "\n", 2)
	o := jsonLines[objectJSON](t, lines[1])[0]
	if o.Name != "mu" || o.Counters == nil || *o.Counters != l.Stats() || o.Counters.Timeouts != 1 {
		t.Errorf("object record %+v (counters %+v), want this process's %+v with one timeout", o, o.Counters, l.Stats())
	}
	// Without -counters the field is absent.
	_, out, _ = mpipc(t, "stat", "-json", path, "mu")
	if strings.Contains(out, "counters") {
		t.Errorf("stat -json without -counters: %s", out)
	}

	rc, out, e = mpipc(t, "stat", "-counters", path)
	if rc != exitOK || e != "" {
		t.Fatalf("stat -counters: rc %d, %q", rc, e)
	}
	row := regexp.MustCompile(`(?m)^mu +(\d+) +(\d+) +1 +0 +(\d+)$`)
	if !strings.Contains(out, "COUNTERS") || !row.MatchString(out) {
		t.Errorf("stat -counters lacks a row for mu with one timeout:\n%s", out)
	}
	if rc, out, _ := mpipc(t, "stat", "-h"); rc != exitOK || !strings.Contains(out, "counters are zero") {
		t.Errorf("stat -h does not say mpipc's own counters are zero: rc %d\n%s", rc, out)
	}
}
