//go:build linux

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpipc/mpipc/dict"
	"github.com/mpipc/mpipc/shm"
)

// TestStatDict: stat shows a Dict's length, and a bytes-keyed Dict's keys
// quoted and bounded.
func TestStatDict(t *testing.T) {
	dir := t.TempDir()
	seg, err := shm.Create("dicts", &shm.Options{Dir: dir, Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dict.Create[int64, float64](seg, "prices", 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Set(1, 1.5)
	d.Set(2, 2.5)
	b, err := dict.CreateBytes(seg, "sessions", 100, 64, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Set([]byte("user:42"), []byte("blob"))
	b.Set([]byte("tab\there \"quoted\""), nil)
	for i := range 30 {
		b.Set([]byte(fmt.Sprintf("k%02d", i)), nil)
	}
	odd, err := dict.CreateBytes(seg, "odd", 4, 64, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	odd.Set([]byte("tab\there \"q\"\x00"), nil)
	seg.Close()
	rc, out, e := mpipc(t, "stat", filepath.Join(dir, "dicts"))
	if rc != exitOK {
		t.Fatalf("stat: rc %d, stderr %s", rc, e)
	}
	for _, want := range []string{"prices", "dict v1", "2 entries (capacity 100, 8-byte keys, 8-byte values)",
		"sessions", "32 entries (capacity 100, bytes: keys up to 64, values up to 64 bytes)",
		"KEYS OF sessions (16 of 32 shown, at most 40 bytes each)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stat output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `KEYS OF odd (1 of 1 shown`) || !strings.Contains(out, `  "tab\there \"q\"\x00"`) {
		t.Errorf("stat does not quote a key with a tab, quotes and a NUL:\n%s", out)
	}
	// 16 + 1 keys, quoted, one per line.
	if n := strings.Count(out, "\n  \""); n != 17 || strings.Contains(out, "\there") {
		t.Errorf("stat shows %d quoted keys, or a raw tab:\n%s", n, out)
	}
	t.Log(out)
}
