//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
)

// jsonLines parses out as JSON Lines, each into a new T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var recs []T
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var r T
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestLsJSON(t *testing.T) {
	dir := staleDir(t)
	rc, out, e := mpipc(t, "ls", dir, "-json", "-a")
	if rc != exitOK || e != "" {
		t.Fatalf("ls -json: rc %d, %q", rc, e)
	}
	recs := jsonLines[segmentJSON](t, out)
	byName := map[string]segmentJSON{}
	for _, r := range recs {
		if r.Record != "segment" || r.Path != filepath.Join(dir, r.Name) {
			t.Errorf("record %+v", r)
		}
		byName[r.Name] = r
	}
	if len(recs) != 4 || len(byName) != 4 {
		t.Fatalf("ls -json -a: %d records %q, want live, killed, never, notes.txt", len(recs), out)
	}
	uid := os.Geteuid()
	for _, n := range []string{"live", "killed", "never\x1b"} {
		r := byName[n]
		created, err := time.Parse(time.RFC3339Nano, r.Created)
		if r.Problem != "" || r.Size != 128<<10 || r.Used <= 0 || r.Used > r.Size || r.MaxObjects <= 0 || r.MaxProcs <= 0 ||
			r.Owner != uid || r.Mode != "0600" || r.CreatorPid != os.Getpid() || err != nil || time.Since(created) > time.Minute ||
			r.Objects != 0 || r.LockHolderPid != 0 || r.Stale {
			t.Errorf("%q: %+v (created: %v)", n, r, err)
		}
	}
	// The creator left its slot cleanly; the child claimed it again.
	if r := byName["live"]; r.Attached != 1 || len(r.Processes) != 1 ||
		r.Processes[0].State != "alive" || !r.Processes[0].Alive || r.Processes[0].Pid <= 0 || r.Processes[0].Pid == os.Getpid() ||
		r.Processes[0].UID != uid || r.Processes[0].Slot != 1 {
		t.Errorf("live: %+v", r)
	}
	if r := byName["killed"]; r.Attached != 0 || len(r.Processes) != 1 || r.Processes[0].State != "dead" || r.Processes[0].Alive {
		t.Errorf("killed: %+v", r)
	}
	if r := byName["never\x1b"]; r.Attached != 0 || len(r.Processes) != 1 || r.Processes[0].State != "left" {
		t.Errorf("never: %+v", r)
	}
	if r := byName["notes.txt"]; !strings.Contains(r.Problem, "not an mpipc segment") || r.Size != 0 {
		t.Errorf("foreign file: %+v", r)
	}
	// Without -a the foreign file is left out.
	if rc, out, _ := mpipc(t, "ls", "-json", dir); rc != exitOK || len(jsonLines[segmentJSON](t, out)) != 3 {
		t.Errorf("ls -json: rc %d, %q", rc, out)
	}
}

func TestLsJSONEmpty(t *testing.T) {
	if rc, out, e := mpipc(t, "ls", "-json", t.TempDir()); rc != exitOK || out != "" || e != "" {
		t.Errorf("ls -json of an empty directory: rc %d, %q, %q (want no output)", rc, out, e)
	}
}

func TestStatJSON(t *testing.T) {
	_, path := newSegment(t)
	c := proctest.Start(t, "attach", path)
	c.Expect(proctest.Ready, 0)
	t.Cleanup(c.Kill)

	rc, out, e := mpipc(t, "stat", "-json", path)
	if rc != exitOK || e != "" {
		t.Fatalf("stat -json: rc %d, %q", rc, e)
	}
	lines := strings.SplitN(out, "\n", 2)
	seg := jsonLines[segmentJSON](t, lines[0])[0]
	if seg.Record != "segment" || seg.Path != path || seg.Name != "seg1" || seg.Objects != 7 || seg.Problem != "" || seg.Stale {
		t.Errorf("segment record %+v", seg)
	}
	alive := 0
	for _, p := range seg.Processes {
		if p.Alive {
			alive++
			// stat itself has the segment mapped too.
			if p.Pid != c.Pid() && p.Pid != os.Getpid() {
				t.Errorf("alive process %+v is neither the child %d nor stat %d", p, c.Pid(), os.Getpid())
			}
		}
	}
	if alive < 1 || alive != seg.Attached {
		t.Errorf("attached %d, alive slots %d: %+v", seg.Attached, alive, seg.Processes)
	}
	objs := jsonLines[objectJSON](t, lines[1])
	want := map[string]struct{ kind, state string }{
		"jobs-lock": {"lock", "free"},
		"slots":     {"semaphore", "value 3"},
		"tree":      {"rlock", "free"},
		"jobs":      {"joinable-queue", "2/8 messages"},
		"done":      {"event", "set"},
		"ready":     {"condition", "lock free"},
		"phase":     {"barrier", "3 parties"},
	}
	for _, o := range objs {
		w, ok := want[o.Name]
		if !ok {
			continue
		}
		delete(want, o.Name)
		if o.Record != "object" || o.Segment != path || !strings.HasPrefix(o.Kind, strings.Split(w.kind, "-")[0]) ||
			!strings.HasPrefix(o.State, w.state) || !o.Ready || o.Offset <= 0 || o.Size <= 0 || o.KindVersion <= 0 || o.Creator != os.Getpid() {
			t.Errorf("object %+v, want kind %s, state %s...", o, w.kind, w.state)
		}
	}
	if len(objs) != seg.Objects || len(want) != 0 {
		t.Errorf("%d object records for %d objects; missing %v", len(objs), seg.Objects, want)
	}

	// One object.
	rc, out, _ = mpipc(t, "stat", path, "slots", "-json")
	if recs := strings.Split(strings.TrimSpace(out), "\n"); rc != exitOK || len(recs) != 2 ||
		jsonLines[objectJSON](t, recs[1])[0].Name != "slots" {
		t.Errorf("stat -json SEG slots: rc %d, %q", rc, out)
	}
	if rc, _, e := mpipc(t, "stat", "-json", path, "nope"); rc != exitFail || !strings.Contains(e, "no object named") {
		t.Errorf("stat -json of a missing object: rc %d, %q", rc, e)
	}
}

func TestStatJSONCorrupt(t *testing.T) {
	_, path := newSegment(t)
	corrupt(t, path)
	rc, out, e := mpipc(t, "stat", "-json", path)
	if rc != exitFail || !strings.Contains(e, "checksum") {
		t.Fatalf("stat -json of a corrupt segment: rc %d, %q, %q", rc, out, e)
	}
}
