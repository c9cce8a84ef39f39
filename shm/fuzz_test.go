//go:build linux

package shm

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/robust"
)

var genCorpus = flag.Bool("shm.gencorpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzOpen")

// seedSlots is the registry size of the hand-made segments.
const seedSlots = 4

// seedObject is a directory entry for segmentBytes.
type seedObject struct {
	name      string
	state     uint32
	kind      Kind
	off, size uint64
}

// segmentBytes builds a segment file image by hand, as a peer in another
// language would.
func segmentBytes(capacity int, size int64, objs []seedObject) []byte {
	h := header{headerSize: headerSizeFor(capacity, seedSlots), capacity: capacity, slots: seedSlots, size: size,
		creator: 4242, created: 1700000000e9}
	b := make([]byte, size)
	h.encode(b)
	for _, o := range objs {
		// Each object at the first free entry of its probe sequence, as
		// Alloc places it.
		i := home(o.name, capacity)
		for le.Uint32(entry(b, i)[eState:]) != stateFree {
			i = (i + 1) % capacity
		}
		e := entry(b, i)
		le.PutUint32(e[eState:], o.state)
		le.PutUint32(e[eKind:], uint32(o.kind)|1<<16)
		le.PutUint64(e[eOffset:], o.off)
		le.PutUint64(e[eSize:], o.size)
		le.PutUint64(e[eCreator:], proc.ID{Slot: seedSlots, Gen: 1}.Pack())
		copy(e[eName:], o.name)
	}
	return b
}

type seed struct {
	name string
	data []byte
	fix  bool // recompute the checksum over the fuzzed header
}

func fuzzSeeds() []seed {
	hs := uint64(headerSizeFor(2, seedSlots))
	valid := segmentBytes(2, int64(hs)+256, []seedObject{
		{"a", stateReady, KindBytes, hs, 8},
		{"b", stateReady, KindLock, hs + 64, 64},
	})
	init := segmentBytes(2, int64(hs)+128, []seedObject{{"a", stateInit, KindBytes, hs, 8}})
	huge := segmentBytes(2, int64(hs)+128, []seedObject{
		{"a", stateReady, KindBytes, 1 << 62, 8},
		{"b", stateReady, KindBytes, hs, ^uint64(0) - 8},
	})
	badState := segmentBytes(2, int64(hs)+128, []seedObject{{"a", 5, KindBytes, hs, 8}})
	bigDir := segmentBytes(16, headerSizeFor(16, seedSlots)+64, nil)
	noMagic := append([]byte(nil), valid...)
	noMagic[0] = 0
	return []seed{
		{"valid", valid, false},
		{"valid-fix", valid, true},
		{"empty-dir", segmentBytes(2, headerSizeFor(2, seedSlots), nil), false},
		{"big-dir", bigDir, true},
		{"initializing", init, false},
		{"huge-offsets", huge, false},
		{"bad-state", badState, false},
		{"truncated-header", valid[:40], false},
		{"truncated-dir", valid[:200], false},
		{"truncated-objects", valid[:len(valid)-1], true},
		{"no-magic", noMagic, false},
		{"empty", nil, false},
	}
}

// TestWriteFuzzCorpus rewrites testdata/fuzz/FuzzOpen when run with
// -shm.gencorpus; otherwise it checks that the committed corpus is current.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for _, s := range fuzzSeeds() {
		text := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nbool(%v)\n", strconv.Quote(string(s.data)), s.fix)
		path := filepath.Join(dir, s.name)
		if *genCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed corpus: %v (regenerate with -shm.gencorpus)", err)
		}
		if string(got) != text {
			t.Errorf("seed %s is stale (regenerate with -shm.gencorpus)", s.name)
		}
	}
}

// TestSeedsBehave checks what Open makes of the hand-built seeds, so that
// the fuzz target starts from inputs that reach deep.
func TestSeedsBehave(t *testing.T) {
	want := map[string]error{
		"valid": nil, "valid-fix": nil, "empty-dir": nil, "big-dir": nil, "initializing": nil,
		"huge-offsets": nil, "bad-state": nil,
		"truncated-header": ErrTruncated, "truncated-dir": ErrTruncated, "truncated-objects": ErrTruncated,
		"no-magic": ErrNotSegment, "empty": ErrNotSegment,
	}
	path := filepath.Join(t.TempDir(), "seg")
	for _, s := range fuzzSeeds() {
		if err := os.WriteFile(path, s.data, 0o600); err != nil {
			t.Fatal(err)
		}
		seg, err := Open(path, nil)
		if w := want[s.name]; (w == nil) != (err == nil) || (w != nil && !errors.Is(err, w)) {
			t.Errorf("%s: Open: %v, want %v", s.name, err, w)
		}
		if err == nil {
			seg.Close()
		}
	}
	if err := os.WriteFile(path, fuzzSeeds()[0].data, 0o600); err != nil {
		t.Fatal(err)
	}
	seg, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if objs := mustObjects(t, seg); len(objs) != 2 {
		t.Fatalf("valid seed lists %+v", objs)
	}
}

var robustErrNotRecoverable = robust.ErrNotRecoverable

var openErrs = []error{ErrNotSegment, ErrVersion, ErrChecksum, ErrTruncated, ErrCorrupt}

// FuzzOpen feeds arbitrary bytes as a segment file to Open, Inspect,
// Objects, Lookup, Alloc and Destroy: each must return an error or work, never
// panic or fault. With fix set, the header checksum is recomputed first,
// as a hostile peer would, so that the fields behind it get fuzzed too.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.data, s.fix)
	}
	// One file per fuzzing process, in tmpfs, rewritten for each input.
	file, err := os.CreateTemp(DefaultDir, "mpipc-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	path := file.Name()
	f.Cleanup(func() {
		file.Close()
		os.Remove(path)
	})
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		// Nothing here may block for long: a slow input is a hang.
		wd := time.AfterFunc(5*time.Second, func() {
			debug.SetTraceback("all")
			panic(fmt.Sprintf("FuzzOpen: one input took over 5s: %q %v", data, fix))
		})
		defer wd.Stop()
		if fix && len(data) >= fixedLen {
			data = append([]byte(nil), data...)
			le.PutUint64(data[offChecksum:], checksum(data[:offChecksum]))
		}
		if err := file.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		inf, ierr := Inspect(path)
		s, err := Open(path, &Options{ReadyTimeout: time.Millisecond})
		if err != nil {
			if !isAny(err, openErrs...) {
				t.Fatalf("Open: unexpected error %v", err)
			}
			if ierr == nil {
				t.Fatalf("Inspect accepted what Open refused: %v", err)
			}
			return
		}
		defer s.Close()
		if ierr != nil && !errors.Is(ierr, ErrCorrupt) {
			t.Fatalf("Inspect: %v, but Open accepted it", ierr)
		}
		if inf.Size != s.Size() {
			t.Fatalf("Inspect size %d, segment %d", inf.Size, s.Size())
		}
		objs, err := s.Objects()
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Objects: %v", err)
		}
		for _, o := range objs {
			if o.Offset < s.hdr.headerSize || o.Offset+o.Size > s.Size() {
				t.Fatalf("object outside the segment: %+v", o)
			}
			spec := Spec{Name: o.Name, Kind: o.Kind, KindVersion: o.KindVersion, Fingerprint: o.Fingerprint, Size: o.Size}
			mem, err := s.Lookup(spec)
			if err == nil {
				if int64(len(mem)) != o.Size {
					t.Fatalf("Lookup %q: %d bytes, want %d", o.Name, len(mem), o.Size)
				}
				clear(mem) // every byte handed out is writable
				s.Release(mem)
			} else if !isAny(err, ErrNotReady, ErrCorrupt, ErrNotExist, ErrKindMismatch, ErrTypeMismatch) {
				t.Fatalf("Lookup %q: %v", o.Name, err)
			}
		}
		_ = s.Info()
		spec := Spec{Name: "fuzz-new", Kind: KindBytes, Size: 24}
		if mem, err := s.Alloc(spec, func(m []byte) error { m[23] = 1; return nil }); err == nil {
			s.Release(mem)
			if mem, err := s.Lookup(spec); err != nil {
				t.Fatalf("Lookup after Alloc: %v", err)
			} else {
				s.Release(mem)
			}
			// Alloc checked every entry in use: none overlaps another.
			objs, _ := s.Objects()
			for i, a := range objs {
				for _, b := range objs[i+1:] {
					if a.Offset < b.Offset+b.Size && b.Offset < a.Offset+a.Size {
						t.Fatalf("Alloc succeeded with %+v and %+v overlapping", a, b)
					}
				}
			}
		} else if !isAny(err, ErrFull, ErrCorrupt, ErrExist, robustErrNotRecoverable) {
			t.Fatalf("Alloc: %v", err)
		}
		// Destroy every object listed, and the new one: an error or done.
		objs, _ = s.Objects()
		named := map[string]int{}
		for _, o := range objs {
			named[o.Name]++
		}
		for _, o := range append(objs, Object{Name: spec.Name}) {
			if err := s.Destroy(o.Name); err == nil {
				// A hostile directory may hold a name twice.
				if _, err := s.Lookup(Spec{Name: o.Name, Kind: o.Kind, KindVersion: o.KindVersion, Fingerprint: o.Fingerprint}); named[o.Name] <= 1 && !errors.Is(err, ErrNotExist) {
					t.Fatalf("Lookup of destroyed %q: %v", o.Name, err)
				}
			} else if !isAny(err, ErrNotReady, ErrCorrupt, ErrNotExist, ErrInUse, robustErrNotRecoverable) {
				t.Fatalf("Destroy %q: %v", o.Name, err)
			}
		}
	})
}

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
