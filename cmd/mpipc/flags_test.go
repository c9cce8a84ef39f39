//go:build linux

package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		f    bool
		n    int
		pos  []string
	}{
		{[]string{"a", "-f"}, true, 0, []string{"a"}},
		{[]string{"-f", "a", "b"}, true, 0, []string{"a", "b"}},
		{[]string{"a", "-n", "3", "b", "-f"}, true, 3, []string{"a", "b"}},
		{[]string{"a", "--", "-f", "b"}, false, 0, []string{"a", "-f", "b"}},
		{[]string{"-n=2", "--", "--"}, false, 2, []string{"--"}},
		{[]string{"-", "x"}, false, 0, []string{"-", "x"}},
		{nil, false, 0, nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := fs.Bool("f", false, "")
		n := fs.Int("n", 0, "")
		if err := parseInterspersed(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if *f != tc.f || *n != tc.n || !slices.Equal(fs.Args(), tc.pos) {
			t.Errorf("%q: f=%v n=%d args %q; want %v %d %q", tc.args, *f, *n, fs.Args(), tc.f, tc.n, tc.pos)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := parseInterspersed(fs, []string{"a", "-bogus"}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown flag after an argument: %v", err)
	}
}

// rm SEG -f removes SEG and does not look for a file named -f.
func TestFlagsAfterArguments(t *testing.T) {
	dir, path := newSegment(t)
	foreign := foreignFile(t, dir)
	rc, out, e := mpipc(t, "rm", foreign, "-f")
	if rc != exitOK || strings.Contains(e, "-f") || !strings.Contains(out, "removed") {
		t.Errorf("rm FILE -f: rc %d, stdout %q, stderr %q", rc, out, e)
	}
	if _, err := os.Stat(foreign); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm FILE -f left the file: %v", err)
	}
	if rc, out, e := mpipc(t, "ls", dir, "-a"); rc != exitOK || !strings.Contains(out, "seg1") {
		t.Errorf("ls DIR -a: rc %d, %q, %q", rc, out, e)
	}
	if rc, _, e := mpipc(t, "stat", path, "-bogus"); rc != exitUsage || !strings.Contains(e, "bogus") {
		t.Errorf("stat SEG -bogus: rc %d, stderr %q", rc, e)
	}
	if rc, out, _ := mpipc(t, "stat", path, "-h"); rc != exitOK || !strings.Contains(out, "usage: mpipc stat") {
		t.Errorf("stat SEG -h: rc %d, %q", rc, out)
	}
	if rc, _, e := mpipc(t, "rm", "--", "-f"); rc != exitFail || !strings.Contains(e, "-f") {
		t.Errorf("rm -- -f: rc %d, stderr %q (want a failure naming the file -f)", rc, e)
	}
}
