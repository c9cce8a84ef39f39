//go:build linux

package statsvar_test

import (
	"context"
	"encoding/json"
	"expvar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/stats"
	"github.com/mpipc/mpipc/stats/statsvar"
)

// TestExpvarJSON: the /debug/vars output parses as JSON and carries the
// object under its segment path and name, with its counters.
func TestExpvarJSON(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), nil)
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

	rec := httptest.NewRecorder()
	expvar.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/vars", nil))
	var vars map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &vars); err != nil {
		t.Fatalf("/debug/vars is not JSON: %v\n%s", err, rec.Body)
	}
	var got map[string]map[string]stats.Object
	if err := json.Unmarshal(vars[statsvar.Name], &got); err != nil {
		t.Fatalf("%q is not the snapshot map: %v\n%s", statsvar.Name, err, vars[statsvar.Name])
	}
	o, ok := got[seg.Path()]["mu"]
	want := stats.Object{Kind: "lock", Handles: 1, Stats: l.Stats()}
	if !ok || o != want || o.Timeouts != 1 {
		t.Fatalf("%s: %+v (present %v), want %+v with one timeout\n%s", seg.Path(), o, ok, want, vars[statsvar.Name])
	}
	if s := expvar.Get(statsvar.Name).String(); !json.Valid([]byte(s)) {
		t.Fatalf("expvar.Get(%q).String() is not JSON: %s", statsvar.Name, s)
	}
}
