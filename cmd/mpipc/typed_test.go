//go:build linux

package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

func typedSegment(t *testing.T) string {
	t.Helper()
	seg, err := shm.Create("typed", &shm.Options{Dir: t.TempDir(), Size: 128 << 10})
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
	if _, err := array.Create(seg, "rows", 3, [][4]float64{{1, 2, 3, 4}, {-1.5, 0, 1e300, 8}, {9, 10, 11, 12}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := array.Create(seg, "grid", 2, [][2][2]uint8{{{1, 2}, {3, 4}}, {{5, 6}, {7, 255}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := value.Create(seg, "pair", [2]float32{0.5, -3}, nil); err != nil { // one word
		t.Fatal(err)
	}
	if _, err := value.Create(seg, "triple", [3]int32{-7, 0, 2147483647}, nil); err != nil { // double-buffered
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

// numbers returns the numbers in a -type output such as "[[1 2] [3 4]]",
// in order, and the nesting depth of its brackets.
func numbers(t *testing.T, s string) (xs []float64, depth int) {
	t.Helper()
	d := 0
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		if r == '[' {
			d++
			depth = max(depth, d)
		} else if r == ']' {
			d--
		}
		return r == '[' || r == ']' || r == ' '
	}) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("%q in %q: %v", f, s, err)
		}
		xs = append(xs, x)
	}
	return xs, depth
}

// TestStatTypeArrays: -type [N]T and nested arrays read Values (one word
// and double-buffered) and Arrays of them; the numbers parsed back from the
// output are the ones stored, in order, nested as the type is.
func TestStatTypeArrays(t *testing.T) {
	path := typedSegment(t)
	for _, tc := range []struct {
		obj, typ string
		want     []float64
		depth    int
	}{
		{"rows", "[4]float64", []float64{1, 2, 3, 4, -1.5, 0, 1e300, 8, 9, 10, 11, 12}, 2},
		{"grid", "[2][2]uint8", []float64{1, 2, 3, 4, 5, 6, 7, 255}, 3},
		{"pair", "[2]float32", []float64{0.5, -3}, 1},
		{"triple", "[3]int32", []float64{-7, 0, 2147483647}, 1},
		{"vec", "[1]float64", nil, 0}, // refused below: elements are float64
	} {
		rc, out, e := mpipc(t, "stat", path, tc.obj, "-type", tc.typ)
		if tc.want == nil {
			if rc != exitFail {
				t.Errorf("stat %s -type %s: rc %d, %q, %q; want a failure", tc.obj, tc.typ, rc, out, e)
			}
			continue
		}
		head := "VALUE OF " + tc.obj + " (" + tc.typ + ")\n  "
		i := strings.Index(out, head)
		if rc != exitOK || i < 0 {
			t.Errorf("stat %s -type %s: rc %d, %q, %q", tc.obj, tc.typ, rc, out, e)
			continue
		}
		line, _, _ := strings.Cut(out[i+len(head):], "\n")
		got, depth := numbers(t, line)
		if !slices.Equal(got, tc.want) || depth != tc.depth {
			t.Errorf("stat %s -type %s: %q parses as %v (depth %d), want %v (depth %d)", tc.obj, tc.typ, line, got, depth, tc.want, tc.depth)
		}
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
		{[]string{"-json", path, "count", "-type", "uint64"}, exitFail, "holds a type of 8 bytes (fingerprint"},
		{[]string{path, "mu", "-type", "int64"}, exitFail, "values and arrays only"},
		{[]string{path, "count", "-type", "int"}, exitUsage, "want bool"},
		{[]string{path, "count", "-type", "string"}, exitUsage, "want bool"},
		{[]string{path, "vec", "-type", "[4]float64"}, exitFail, "stored elements are 8 bytes"},
		{[]string{path, "rows", "-type", "[3]float64"}, exitFail, "stored elements are 32 bytes"},
		{[]string{path, "rows", "-type", "[4]int64"}, exitFail, "rows is not a Value or Array of [4]int64"},
		{[]string{path, "pair", "-type", "[3]float32"}, exitFail, "holds a type of 8 bytes"},
		{[]string{path, "count", "-type", "[0]int64"}, exitUsage, "N a positive integer"},
		{[]string{path, "count", "-type", "[x]int64"}, exitUsage, "N a positive integer"},
		{[]string{path, "count", "-type", "[-1]int64"}, exitUsage, "N a positive integer"},
		{[]string{path, "count", "-type", "[4]string"}, exitUsage, "want bool"},
		{[]string{path, "count", "-type", "[4]"}, exitUsage, "want bool"},
		{[]string{path, "count", "-type", "[1000000000]int64"}, exitUsage, "bytes"},
		{[]string{path, "-type", "int64"}, exitUsage, "-type needs an OBJECT"},
		{[]string{path, "nope", "-type", "int64"}, exitFail, "no object named"},
	} {
		rc, out, e := mpipc(t, append([]string{"stat"}, tc.args...)...)
		if rc != tc.rc || !strings.Contains(e, tc.want) || strings.Contains(out, "VALUE OF") {
			t.Errorf("stat %q: rc %d, stdout %q, stderr %q; want rc %d and %q", tc.args, rc, out, e, tc.rc, tc.want)
		}
	}
}
