//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

func typedSegment(t *testing.T) string {
	t.Helper()
	seg, err := shm.Create("typed", &shm.Options{Dir: t.TempDir(), Size: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := value.Create(seg, "count", int64(-42), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := value.CreateRaw(seg, "ratio", 0.25, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := value.Create(seg, "flag", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := array.Create(seg, "vec", 4, []float64{1.5, -2, 3, 4e10}, nil); err != nil {
		t.Fatal(err)
	}
	big := make([]uint16, 100)
	for i := range big {
		big[i] = uint16(i)
	}
	if _, err := array.CreateRaw(seg, "big", 100, big); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Create(seg, "mu", nil); err != nil {
		t.Fatal(err)
	}
	return seg.Path()
}

func TestStatType(t *testing.T) {
	path := typedSegment(t)
	for _, tc := range []struct{ obj, typ, want string }{
		{"count", "int64", "-42"},
		{"ratio", "float64", "0.25"},
		{"flag", "bool", "true"},
		{"vec", "float64", "[1.5 -2 3 4e+10]"},
		{"big", "uint16", "[0 1 2 "},
	} {
		rc, out, e := mpipc(t, "stat", path, tc.obj, "-type", tc.typ)
		if rc != exitOK || !strings.Contains(out, "VALUE OF "+tc.obj+" ("+tc.typ+")\n  "+tc.want) {
			t.Errorf("stat %s -type %s: rc %d, %q, %q; want %q", tc.obj, tc.typ, rc, out, e, tc.want)
		}
	}
	if _, out, _ := mpipc(t, "stat", path, "big", "-type", "uint16"); !strings.Contains(out, " 63] ... (100 elements, first 64 shown)") {
		t.Errorf("stat of a long array: %q", out)
	}
	rc, out, _ := mpipc(t, "stat", "-json", "-type", "float64", path, "vec")
	recs := strings.Split(strings.TrimSpace(out), "\n")
	if rc != exitOK || len(recs) != 2 {
		t.Fatalf("stat -json -type: rc %d, %q", rc, out)
	}
	if o := jsonLines[objectJSON](t, recs[1])[0]; o.Value == nil || *o.Value != "[1.5 -2 3 4e+10]" {
		t.Errorf("stat -json -type: %+v", o)
	}
	// Without -type there is no value field.
	_, out, _ = mpipc(t, "stat", "-json", path, "vec")
	if strings.Contains(out, `"value"`) {
		t.Errorf("value without -type: %q", out)
	}
}

func TestStatTypeErrors(t *testing.T) {
	path := typedSegment(t)
	for _, tc := range []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{path, "count", "-type", "float64"}, exitFail, "count is not a Value or Array of float64"}, // recorded int64
		{[]string{path, "vec", "-type", "int64"}, exitFail, "vec is not a Value or Array of int64"},
		{[]string{"-json", path, "count", "-type", "uint64"}, exitFail, "type fingerprint"},
		{[]string{path, "mu", "-type", "int64"}, exitFail, "values and arrays only"},
		{[]string{path, "count", "-type", "int"}, exitUsage, "want bool"},
		{[]string{path, "count", "-type", "string"}, exitUsage, "want bool"},
		{[]string{path, "vec", "-type", "[4]float64"}, exitUsage, "not supported yet"},
		{[]string{path, "-type", "int64"}, exitUsage, "-type needs an OBJECT"},
		{[]string{path, "nope", "-type", "int64"}, exitFail, "no object named"},
	} {
		rc, out, e := mpipc(t, append([]string{"stat"}, tc.args...)...)
		if rc != tc.rc || !strings.Contains(e, tc.want) || strings.Contains(out, "VALUE OF") {
			t.Errorf("stat %q: rc %d, stdout %q, stderr %q; want rc %d and %q", tc.args, rc, out, e, tc.rc, tc.want)
		}
	}
}
