//go:build linux

package shm

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/robust"
)

func TestMain(m *testing.M) {
	registerRoles()
	proctest.Main(m)
}

// mustCreate creates a segment with a unique name in /dev/shm; the file is
// removed and the segment closed when the test ends.
func mustCreate(tb testing.TB, opts *Options) (*Segment, string) {
	tb.Helper()
	name := proctest.TempName(tb)
	s, err := Create(name, opts)
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, filepath.Join(DefaultDir, name)
}

// mustOpen opens a segment and closes it when the test ends.
func mustOpen(tb testing.TB, name string, opts *Options) *Segment {
	tb.Helper()
	s, err := Open(name, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// patch writes b at off in the file at path, bypassing any mapping.
func patch(tb testing.TB, path string, off int64, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		tb.Fatal(err)
	}
}

func readAt(tb testing.TB, path string, off int64, n int) []byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		tb.Fatal(err)
	}
	return b
}

// resum recomputes the header checksum of the file at path.
func resum(tb testing.TB, path string) {
	tb.Helper()
	b := readAt(tb, path, 0, fixedLen)
	le.PutUint64(b[offChecksum:], checksum(b[:offChecksum]))
	patch(tb, path, 0, b)
}

func wantErr(tb testing.TB, err error, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("got error %v, want %v", err, target)
	}
}

var bytesSpec = Spec{Name: "obj", Kind: KindBytes, KindVersion: 1, Size: 100}

func TestCreateAllocOpenLookup(t *testing.T) {
	s, path := mustCreate(t, nil)
	if s.Size() != defaultSize || s.Path() != path {
		t.Fatalf("size %d path %q", s.Size(), s.Path())
	}
	mem, err := s.Alloc(bytesSpec, func(mem []byte) error {
		copy(mem, "hello")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(mem) != 100 || cap(mem) != 100 {
		t.Fatalf("len %d cap %d", len(mem), cap(mem))
	}
	s2 := mustOpen(t, path, nil) // an absolute path is used as is
	got, err := s2.Lookup(bytesSpec)
	if err != nil {
		t.Fatal(err)
	}
	if string(got[:5]) != "hello" || len(got) != 100 || cap(got) != 100 {
		t.Fatalf("looked up %q len %d cap %d", got[:5], len(got), cap(got))
	}
	got[5] = '!'
	if mem[5] != '!' {
		t.Fatal("a write through one mapping is not seen through the other")
	}
	// Size 0 in the spec skips the size check.
	if _, err := s2.Lookup(Spec{Name: "obj", Kind: KindBytes, KindVersion: 1}); err != nil {
		t.Fatal(err)
	}
	objs, err := s2.Objects()
	if err != nil || len(objs) != 1 {
		t.Fatalf("Objects: %v %v", objs, err)
	}
	o := objs[0]
	want := Object{Name: "obj", Kind: KindBytes, KindVersion: 1, Offset: headerSizeFor(2*DefaultMaxObjects, DefaultMaxProcs),
		Size: 100, Ready: true, Creator: os.Getpid(), CreatorID: s2.Registry().Self()}
	if o != want {
		t.Fatalf("object %+v, want %+v", o, want)
	}
}

func TestAllocAlignedAndZeroed(t *testing.T) {
	s, _ := mustCreate(t, nil)
	for i, n := range []int64{1, 63, 64, 65, 1000} {
		spec := Spec{Name: "o" + itoa(i), Kind: KindBytes, Size: n}
		mem, err := s.Alloc(spec, func(mem []byte) error {
			for _, c := range mem {
				if c != 0 {
					return errors.New("not zeroed")
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if off := int64(uintptrOf(mem)) - int64(uintptrOf(s.mem)); off%ObjectAlign != 0 || off < s.hdr.headerSize {
			t.Fatalf("object %d at offset %d", i, off)
		}
	}
}

func TestCreateExist(t *testing.T) {
	_, path := mustCreate(t, nil)
	_, err := Create(filepath.Base(path), nil)
	wantErr(t, err, ErrExist)
	wantErr(t, err, fs.ErrExist)
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
}

func TestNotExist(t *testing.T) {
	name := proctest.TempName(t)
	_, err := Open(name, nil)
	wantErr(t, err, ErrNotExist)
	wantErr(t, err, fs.ErrNotExist)
	wantErr(t, Remove(name, nil), ErrNotExist)
	_, err = Inspect(filepath.Join(DefaultDir, name))
	wantErr(t, err, ErrNotExist)

	s, _ := mustCreate(t, nil)
	_, err = s.Lookup(bytesSpec)
	wantErr(t, err, ErrNotExist)
}

func TestRemove(t *testing.T) {
	s, path := mustCreate(t, nil)
	if err := Remove(filepath.Base(path), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	// The mapping stays valid.
	if _, err := s.Alloc(bytesSpec, nil); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"../x", "a/b", "", ".", "..", "x\x00y", "/dev/shm/x\x00", strings.Repeat("n", 256)} {
		_, err := Create(name, nil)
		wantErr(t, err, ErrInvalidName)
		_, err = Open(name, nil)
		wantErr(t, err, ErrInvalidName)
		_, err = OpenOrCreate(name, nil)
		wantErr(t, err, ErrInvalidName)
		wantErr(t, Remove(name, nil), ErrInvalidName)
	}
	// The longest plain name is fine (in Dir, so nothing is left behind).
	dir := t.TempDir()
	s, err := Create(strings.Repeat("n", 255), &Options{Dir: dir, Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, _ = mustCreate(t, nil)
	for _, name := range []string{"", strings.Repeat("o", MaxNameLen+1), "a\x00b"} {
		_, err := s.Alloc(Spec{Name: name, Kind: KindBytes, Size: 8}, nil)
		wantErr(t, err, ErrInvalidName)
		_, err = s.Lookup(Spec{Name: name, Kind: KindBytes})
		wantErr(t, err, ErrInvalidName)
	}
	if _, err := s.Alloc(Spec{Name: strings.Repeat("o", MaxNameLen), Kind: KindBytes, Size: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(Spec{Name: strings.Repeat("o", MaxNameLen), Kind: KindBytes}); err != nil {
		t.Fatal(err)
	}
}

func TestDirOption(t *testing.T) {
	dir := t.TempDir()
	s, err := Create("seg", &Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != filepath.Join(dir, "seg") {
		t.Fatalf("path %q", s.Path())
	}
	s2, err := Open("seg", &Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestMode(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		want os.FileMode
	}{{0, 0o600}, {0o640, 0o640}, {0o666, 0o666}} {
		_, path := mustCreate(t, &Options{Mode: c.mode})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.want {
			t.Errorf("mode %v: file has %v, want %v", c.mode, fi.Mode().Perm(), c.want)
		}
	}
}

func TestSizeRounding(t *testing.T) {
	page := int64(os.Getpagesize())
	for _, c := range []struct {
		size, max int64
		want      int64
	}{
		{1, 0, alignUp(headerSizeFor(2*DefaultMaxObjects, DefaultMaxProcs), page)},
		{page + 1, 1, 2 * page},
		{3 * page, 1, 3 * page},
	} {
		procs := 4
		if c.max == 0 {
			procs = 0
		}
		s, path := mustCreate(t, &Options{Size: c.size, MaxObjects: int(c.max), MaxProcs: procs})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if s.Size() != c.want || fi.Size() != c.want {
			t.Errorf("size %d: segment %d file %d, want %d", c.size, s.Size(), fi.Size(), c.want)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 < c.want {
			t.Errorf("size %d: only %d bytes reserved", c.size, st.Blocks*512)
		}
	}
	_, err := Create(proctest.TempName(t), &Options{Size: -1})
	wantErr(t, err, ErrInvalidSize)
	_, err = Create(proctest.TempName(t), &Options{MaxObjects: MaxMaxObjects + 1})
	wantErr(t, err, ErrInvalidSize)
}

func TestOpenBadMagic(t *testing.T) {
	_, path := mustCreate(t, nil)
	patch(t, path, 0, []byte{'X'})
	_, err := Open(path, nil)
	wantErr(t, err, ErrNotSegment)
	_, err = Inspect(path)
	wantErr(t, err, ErrNotSegment)

	// An empty file and a text file are not segments either.
	for _, content := range []string{"", "hello, world\n"} {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p, nil)
		wantErr(t, err, ErrNotSegment)
	}
}

func TestOpenVersion(t *testing.T) {
	_, path := mustCreate(t, nil)
	// Version 1, the layout before the process registry, must never be
	// misread. Version is checked before the checksum, which no longer
	// matches.
	// Version 2, the layout before the attach table and destroyable
	// objects, neither.
	for _, v := range []byte{1, 2} {
		patch(t, path, offVersion, []byte{v, 0, 0, 0})
		_, err := Open(path, nil)
		wantErr(t, err, ErrVersion)
		_, err = Inspect(path)
		wantErr(t, err, ErrVersion)
	}
}

func TestOpenChecksum(t *testing.T) {
	_, path := mustCreate(t, nil)
	orig := readAt(t, path, 0, fixedLen)
	for i := offHeaderSize; i < fixedLen; i++ {
		b := append([]byte(nil), orig...)
		b[i] ^= 0x10
		patch(t, path, 0, b)
		_, err := Open(path, nil)
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("byte %d flipped: got %v, want ErrChecksum", i, err)
		}
		_, err = Inspect(path)
		wantErr(t, err, ErrChecksum)
	}
	patch(t, path, 0, orig)
	s := mustOpen(t, path, nil)
	s.Close()
}

func TestOpenCorruptHeaderFields(t *testing.T) {
	for _, c := range []struct {
		name string
		off  int
		val  []byte
	}{
		{"capacity 0", offCapacity, []byte{0, 0, 0, 0}},
		{"capacity huge", offCapacity, []byte{0xff, 0xff, 0xff, 0xff}},
		{"header size", offHeaderSize, []byte{0x40, 0, 0, 0}},
		{"size below header", offSize, []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{"size negative", offSize, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}},
		{"entry size", offEntrySize, []byte{64, 0, 0, 0}},
		{"registry slots", offRegSlots, []byte{0, 0, 0, 0}},
		{"registry offset", offRegOffset, []byte{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, path := mustCreate(t, nil)
			patch(t, path, int64(c.off), c.val)
			resum(t, path)
			_, err := Open(path, nil)
			wantErr(t, err, ErrCorrupt)
		})
	}
}

func TestOpenTruncated(t *testing.T) {
	for _, size := range []int64{defaultSize / 2, defaultSize - 1, 4096, 10} {
		_, path := mustCreate(t, nil)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, nil)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated to %d: got %v, want ErrTruncated", size, err)
		}
		_, err = Inspect(path)
		wantErr(t, err, ErrTruncated)
	}
	// A size in the header larger than the file (checksum fixed up).
	_, path := mustCreate(t, nil)
	patch(t, path, offSize, le.AppendUint64(nil, 2*defaultSize))
	resum(t, path)
	_, err := Open(path, nil)
	wantErr(t, err, ErrTruncated)
}

func TestOpenSymlink(t *testing.T) {
	_, path := mustCreate(t, nil)
	link := filepath.Join(DefaultDir, proctest.TempName(t))
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Base(link), nil)
	if err == nil || !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Open through a symlink: %v, want ELOOP", err)
	}
	_, err = Inspect(link)
	if !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Inspect through a symlink: %v, want ELOOP", err)
	}
	_, err = Create(filepath.Base(link), nil)
	wantErr(t, err, ErrExist)
	_, err = OpenOrCreate(filepath.Base(link), nil)
	if !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("OpenOrCreate through a symlink: %v, want ELOOP", err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("symlink gone: %v", err)
	}
}

func TestOpenNotRegular(t *testing.T) {
	_, err := Open("/dev/null", nil)
	wantErr(t, err, ErrNotSegment)
}

func TestCreateTooLargeLeavesNoFile(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs(DefaultDir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks == 0 {
		t.Skip("/dev/shm has no size limit")
	}
	// More than the whole file system: tmpfs refuses it before allocating.
	size := int64(st.Blocks)*int64(st.Bsize) + 1<<30
	name := proctest.TempName(t)
	_, err := Create(name, &Options{Size: size})
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Create of %d bytes: %v, want ENOSPC", size, err)
	}
	if _, err := os.Lstat(filepath.Join(DefaultDir, name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("half-made file left behind: %v", err)
	}
}

func TestLookupMismatch(t *testing.T) {
	s, _ := mustCreate(t, nil)
	spec := Spec{Name: "v", Kind: KindValue, KindVersion: 2, Fingerprint: 0xfeed, Size: 16}
	if _, err := s.Alloc(spec, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		mutate func(*Spec)
		want   error
	}{
		{"kind", func(s *Spec) { s.Kind = KindArray }, ErrKindMismatch},
		{"kind version", func(s *Spec) { s.KindVersion = 3 }, ErrKindMismatch},
		{"fingerprint", func(s *Spec) { s.Fingerprint = 0xbeef }, ErrTypeMismatch},
		{"size", func(s *Spec) { s.Size = 32 }, ErrTypeMismatch},
		{"name", func(s *Spec) { s.Name = "w" }, ErrNotExist},
	} {
		sp := spec
		c.mutate(&sp)
		_, err := s.Lookup(sp)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := s.Lookup(spec); err != nil {
		t.Fatal(err)
	}
}

func TestAllocExist(t *testing.T) {
	s, _ := mustCreate(t, nil)
	if _, err := s.Alloc(bytesSpec, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Alloc(bytesSpec, nil)
	wantErr(t, err, ErrExist)
	wantErr(t, err, fs.ErrExist)
	// Another kind does not make the name free.
	_, err = s.Alloc(Spec{Name: bytesSpec.Name, Kind: KindLock, Size: 64}, nil)
	wantErr(t, err, ErrExist)
}

func TestAllocFull(t *testing.T) {
	t.Run("space", func(t *testing.T) {
		s, _ := mustCreate(t, &Options{Size: 1, MaxObjects: 8})
		free := s.Size() - s.hdr.headerSize
		_, err := s.Alloc(Spec{Name: "big", Kind: KindBytes, Size: free + 1}, nil)
		wantErr(t, err, ErrFull)
		if _, err := s.Alloc(Spec{Name: "all", Kind: KindBytes, Size: free}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = s.Alloc(Spec{Name: "one", Kind: KindBytes, Size: 1}, nil)
		wantErr(t, err, ErrFull)
		// A size near the int64 limit does not overflow into success.
		_, err = s.Alloc(Spec{Name: "huge", Kind: KindBytes, Size: 1<<63 - 1}, nil)
		wantErr(t, err, ErrFull)
	})
	t.Run("directory", func(t *testing.T) {
		s, _ := mustCreate(t, &Options{MaxObjects: 2})
		for _, n := range []string{"a", "b"} {
			if _, err := s.Alloc(Spec{Name: n, Kind: KindBytes, Size: 8}, nil); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.Alloc(Spec{Name: "c", Kind: KindBytes, Size: 8}, nil)
		wantErr(t, err, ErrFull)
	})
}

func TestAllocInvalidSize(t *testing.T) {
	s, _ := mustCreate(t, nil)
	for _, n := range []int64{0, -1} {
		_, err := s.Alloc(Spec{Name: "x", Kind: KindBytes, Size: n}, nil)
		wantErr(t, err, ErrInvalidSize)
	}
}

func TestAllocInitFails(t *testing.T) {
	s, _ := mustCreate(t, nil)
	boom := errors.New("boom")
	used := s.Info().Used
	_, err := s.Alloc(bytesSpec, func([]byte) error { return boom })
	wantErr(t, err, boom)
	_, err = s.Lookup(bytesSpec)
	wantErr(t, err, ErrNotExist)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("init's panic was swallowed")
			}
		}()
		s.Alloc(bytesSpec, func([]byte) error { panic("init panics") })
	}()
	_, err = s.Lookup(bytesSpec)
	wantErr(t, err, ErrNotExist)
	if _, err := s.Alloc(bytesSpec, nil); err != nil {
		t.Fatalf("name not free after failed inits: %v", err)
	}
	// The space of the failed attempts is free again: the object got the
	// first bytes after the header.
	if got, want := s.Info().Used, used+alignUp(bytesSpec.Size, ObjectAlign); got != want {
		t.Fatalf("used %d, want %d", got, want)
	}
	if o := mustObjects(t, s)[0]; o.Offset != s.Info().HeaderSize {
		t.Fatalf("object at %d, want %d (the failed inits' space)", o.Offset, s.Info().HeaderSize)
	}
	if n := len(mustObjects(t, s)); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

func mustObjects(tb testing.TB, s *Segment) []Object {
	tb.Helper()
	objs, err := s.Objects()
	if err != nil {
		tb.Fatal(err)
	}
	return objs
}

func TestLookupNotReady(t *testing.T) {
	s, path := mustCreate(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.Alloc(bytesSpec, func([]byte) error {
			close(started)
			<-release
			return nil
		})
		done <- err
	}()
	<-started
	s2 := mustOpen(t, path, &Options{ReadyTimeout: 100 * time.Millisecond})
	t0 := time.Now()
	_, err := s2.Lookup(bytesSpec)
	wantErr(t, err, ErrNotReady)
	if d := time.Since(t0); d < 100*time.Millisecond || d > 5*time.Second {
		t.Fatalf("ErrNotReady after %v, want about 100ms", d)
	}
	objs := mustObjects(t, s2)
	if len(objs) != 1 || objs[0].Ready {
		t.Fatalf("objects %+v, want one initializing", objs)
	}
	// Another creator of the name loses while it initializes.
	_, err = s2.Alloc(bytesSpec, nil)
	wantErr(t, err, ErrExist)
	// A Lookup that starts waiting sees it once it is published.
	go func() {
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	s3 := mustOpen(t, path, &Options{ReadyTimeout: 10 * time.Second})
	if _, err := s3.Lookup(bytesSpec); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// entryOff is the file offset of directory entry i.
func entryOff(i int) int64 { return dirOffset + int64(i)*entrySize }

// entryOfName is the file offset of the directory entry of the object
// name, which must exist.
func entryOfName(t *testing.T, s *Segment, name string) int64 {
	t.Helper()
	i, _ := s.find(name)
	if i < 0 {
		t.Fatalf("no entry named %q", name)
	}
	return entryOff(i)
}

func TestCorruptEntries(t *testing.T) {
	u64b := func(v uint64) []byte { return le.AppendUint64(nil, v) }
	for _, c := range []struct {
		name string
		off  int
		val  []byte
	}{
		{"huge offset", eOffset, u64b(1 << 63)},
		{"offset+size overflows", eSize, u64b(^uint64(0) - 100)},
		{"offset in header", eOffset, u64b(64)},
		{"offset misaligned", eOffset, u64b(uint64(headerSizeFor(2*DefaultMaxObjects, DefaultMaxProcs)) + 8)},
		{"past the end", eOffset, u64b(defaultSize - 64)},
		{"size zero", eSize, u64b(0)},
		{"bad state", eState, []byte{7, 0, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, path := mustCreate(t, nil)
			if _, err := s.Alloc(bytesSpec, nil); err != nil {
				t.Fatal(err)
			}
			patch(t, path, entryOfName(t, s, bytesSpec.Name)+int64(c.off), c.val)
			_, err := s.Lookup(bytesSpec)
			wantErr(t, err, ErrCorrupt)
			objs, err := s.Objects()
			wantErr(t, err, ErrCorrupt)
			if len(objs) != 0 {
				t.Fatalf("corrupt entry listed: %+v", objs)
			}
			inf, err := Inspect(path)
			wantErr(t, err, ErrCorrupt)
			wantErr(t, s.Info().Err, ErrCorrupt)
			if inf.NumObjects != 1 || len(inf.Objects) != 0 {
				t.Fatalf("Inspect: %d in use, %d listed", inf.NumObjects, len(inf.Objects))
			}
		})
	}
	t.Run("name without NUL", func(t *testing.T) {
		s, path := mustCreate(t, nil)
		if _, err := s.Alloc(bytesSpec, nil); err != nil {
			t.Fatal(err)
		}
		patch(t, path, entryOfName(t, s, bytesSpec.Name)+eName, []byte(strings.Repeat("z", nameField)))
		_, err := s.Objects()
		wantErr(t, err, ErrCorrupt)
		_, err = s.Lookup(bytesSpec)
		wantErr(t, err, ErrNotExist)
	})
	t.Run("bad state blocks Alloc", func(t *testing.T) {
		s, path := mustCreate(t, nil)
		patch(t, path, entryOff(3), []byte{9})
		_, err := s.Alloc(bytesSpec, nil)
		wantErr(t, err, ErrCorrupt)
	})
	t.Run("entry out of bounds blocks Alloc", func(t *testing.T) {
		// Free space is what the directory leaves uncovered: an entry
		// whose space cannot be known must stop allocation, not let it
		// hand out space that may be in use.
		for _, v := range []uint64{0, defaultSize + 64, uint64(headerSizeFor(2*DefaultMaxObjects, DefaultMaxProcs)) + 1} {
			s, path := mustCreate(t, nil)
			if _, err := s.Alloc(bytesSpec, nil); err != nil {
				t.Fatal(err)
			}
			patch(t, path, entryOfName(t, s, bytesSpec.Name)+eOffset, u64b(v))
			_, err := s.Alloc(Spec{Name: "other", Kind: KindBytes, KindVersion: 1, Size: 8}, nil)
			wantErr(t, err, ErrCorrupt)
			wantErr(t, s.Info().Err, ErrCorrupt)
		}
	})
	t.Run("overlapping objects block Alloc", func(t *testing.T) {
		s, path := mustCreate(t, nil)
		for _, n := range []string{"a", "b"} {
			if _, err := s.Alloc(Spec{Name: n, Kind: KindBytes, KindVersion: 1, Size: 128}, nil); err != nil {
				t.Fatal(err)
			}
		}
		// b now claims to start inside a.
		patch(t, path, entryOfName(t, s, "b")+eOffset, u64b(uint64(headerSizeFor(2*DefaultMaxObjects, DefaultMaxProcs))+64))
		_, err := s.Alloc(Spec{Name: "c", Kind: KindBytes, KindVersion: 1, Size: 8}, nil)
		wantErr(t, err, ErrCorrupt)
	})
	t.Run("lock word", func(t *testing.T) {
		s, path := mustCreate(t, nil)
		patch(t, path, offLock, u64b(0x0800_0000)) // an undefined bit
		_, err := s.Alloc(bytesSpec, nil)
		wantErr(t, err, ErrCorrupt)
	})
}

func TestClosed(t *testing.T) {
	s, _ := mustCreate(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.File() != nil || s.Size() != 0 {
		t.Fatal("aliases not cleared")
	}
	_, err := s.Alloc(bytesSpec, nil)
	wantErr(t, err, ErrClosed)
	_, err = s.Lookup(bytesSpec)
	wantErr(t, err, ErrClosed)
	_, err = s.Objects()
	wantErr(t, err, ErrClosed)
	if inf := s.Info(); inf.MaxObjects != DefaultMaxObjects || inf.Objects != nil {
		t.Fatalf("Info after Close: %+v", inf)
	}
}

func TestInfoAndInspect(t *testing.T) {
	t0 := time.Now()
	s, path := mustCreate(t, &Options{MaxObjects: 10})
	for i, n := range []int64{10, 100} {
		if _, err := s.Alloc(Spec{Name: "o" + itoa(i), Kind: KindBytes, Size: n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	inf := s.Info()
	hs := headerSizeFor(2*10, DefaultMaxProcs)
	if inf.Path != path || inf.Version != LayoutVersion || inf.Size != defaultSize || inf.HeaderSize != hs ||
		inf.Used != hs+64+128 || inf.MaxObjects != 10 || inf.NumObjects != 2 || len(inf.Objects) != 2 ||
		inf.CreatorPid != os.Getpid() || inf.LockHolder != 0 || inf.Err != nil ||
		inf.Created.Before(t0.Add(-time.Second)) || inf.Created.After(time.Now()) {
		t.Fatalf("Info: %+v", inf)
	}
	got, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Created.Equal(inf.Created) {
		got.Created = inf.Created
	}
	if !equalInfo(got, inf) {
		t.Fatalf("Inspect %+v\nInfo %+v", got, inf)
	}
}

func equalInfo(a, b Info) bool {
	return cmp.Equal(a, b, cmpopts.EquateErrors())
}

func TestAnonymousSealed(t *testing.T) {
	s, err := CreateAnonymous(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := unix.Ftruncate(int(s.File().Fd()), 4096); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("shrinking the memfd: %v, want EPERM", err)
	}
	if err := unix.Ftruncate(int(s.File().Fd()), 2*defaultSize); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("growing the memfd: %v, want EPERM", err)
	}
	s2, err := OpenFile(s.File())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s.Alloc(bytesSpec, func(m []byte) error { m[0] = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	mem, err := s2.Lookup(bytesSpec)
	if err != nil || mem[0] != 7 {
		t.Fatalf("Lookup through OpenFile: %v", err)
	}
}

func TestOpenFileRejectsNonSegment(t *testing.T) {
	f, err := os.CreateTemp(DefaultDir, "mpipc-test-notseg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	_, err = OpenFile(f)
	wantErr(t, err, ErrNotSegment)
	_, err = OpenFile(nil)
	wantErr(t, err, ErrNotExist)
}

// countFds counts this process's open descriptors.
func countFds(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// countMaps counts mappings of files whose path contains sub.
func countMaps(tb testing.TB, sub string) int {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Count(string(b), sub)
}

func TestCloseReleasesFdsAndMappings(t *testing.T) {
	name := proctest.TempName(t)
	path := filepath.Join(DefaultDir, name)
	memfd := "/memfd:" + AnonymousName
	fds, maps, anon := countFds(t), countMaps(t, path), countMaps(t, memfd)
	for i := 0; i < 3; i++ {
		s, err := Create(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		s3, err := OpenOrCreate(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := CreateAnonymous(0)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := OpenFile(a.File())
		if err != nil {
			t.Fatal(err)
		}
		// One mapping and one descriptor per handle, and one of each for
		// the process registry of each file (shared by its handles).
		if got := countMaps(t, path); got != maps+4 {
			t.Fatalf("%d mappings of the segment while open, want %d", got, maps+4)
		}
		if got := countFds(t); got != fds+7 {
			t.Fatalf("%d fds while open, want %d", got, fds+7)
		}
		for _, seg := range []*Segment{s, s2, s3, a, a2} {
			if err := seg.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := Remove(name, nil); err != nil {
			t.Fatal(err)
		}
		// Failed opens release what they took too.
		if _, err := Open(name, nil); !errors.Is(err, ErrNotExist) {
			t.Fatal(err)
		}
		if _, err := Open("/dev/null", nil); err == nil {
			t.Fatal("opened /dev/null")
		}
	}
	if got := countFds(t); got != fds {
		t.Fatalf("%d fds after Close, %d before", got, fds)
	}
	if got := countMaps(t, path); got != maps {
		t.Fatalf("%d mappings of the segment after Close, %d before", got, maps)
	}
	if got := countMaps(t, memfd); got != anon {
		t.Fatalf("%d memfd mappings after Close, %d before", got, anon)
	}
}

// TestOpenOrCreateWaitsForHeader plays the loser of the O_EXCL race against
// a creator that is slow to publish, one that never publishes, and one that
// gives up and removes the file.
func TestOpenOrCreateWaitsForHeader(t *testing.T) {
	t.Run("published late", func(t *testing.T) {
		name := proctest.TempName(t)
		path := filepath.Join(DefaultDir, name)
		f, err := openFd(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		var got atomic.Pointer[Segment]
		go func() {
			s, err := OpenOrCreate(name, &Options{ReadyTimeout: 10 * time.Second})
			got.Store(s)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := reserve(f, 1<<16); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		creator, err := build(f, path, 1<<16, 2*4, 4, time.Second) // room for 4 objects
		if err != nil {
			t.Fatal(err)
		}
		defer creator.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s := got.Load()
		defer s.Close()
		if s.Size() != 1<<16 || s.Info().MaxObjects != 4 {
			t.Fatalf("opened a segment of %d bytes, %d entries", s.Size(), s.Info().MaxObjects)
		}
	})
	t.Run("never published", func(t *testing.T) {
		name := proctest.TempName(t)
		if err := os.WriteFile(filepath.Join(DefaultDir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, err := OpenOrCreate(name, &Options{ReadyTimeout: 100 * time.Millisecond})
		wantErr(t, err, ErrNotSegment)
		if d := time.Since(t0); d < 100*time.Millisecond || d > 5*time.Second {
			t.Fatalf("gave up after %v, want about 100ms", d)
		}
	})
	t.Run("creator removed it", func(t *testing.T) {
		name := proctest.TempName(t)
		path := filepath.Join(DefaultDir, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		var got atomic.Pointer[Segment]
		go func() {
			s, err := OpenOrCreate(name, &Options{ReadyTimeout: 10 * time.Second})
			got.Store(s)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s := got.Load()
		defer s.Close()
		if s.Info().CreatorPid != os.Getpid() {
			t.Fatal("OpenOrCreate did not create the segment after the file was removed")
		}
	})
}

func TestRepairAfterOwnerDeath(t *testing.T) {
	// In-process form of the crash test: a lock word naming a dead process
	// and an entry it left initializing.
	s, path := mustCreate(t, nil)
	if _, err := s.Alloc(bytesSpec, nil); err != nil {
		t.Fatal(err)
	}
	dead := proc.ID{Slot: DefaultMaxProcs, Gen: 12345}.Pack()
	patch(t, path, offLock, le.AppendUint64(nil, dead))
	half := entryOff(home("half", s.hdr.capacity))
	patch(t, path, half+eState, []byte{stateInit})
	patch(t, path, half+eCreator, le.AppendUint64(nil, dead))
	patch(t, path, half+eName, []byte("half\x00"))
	if _, err := s.Alloc(Spec{Name: "next", Kind: KindBytes, Size: 8}, nil); err != nil {
		t.Fatal(err)
	}
	objs := mustObjects(t, s)
	names := map[string]bool{}
	for _, o := range objs {
		names[o.Name] = true
	}
	if len(objs) != 2 || !names["obj"] || !names["next"] {
		t.Fatalf("objects after repair: %+v", objs)
	}
	if st := s.lock.Load(); st.Held || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("segment lock after repair: %+v", st)
	}
}

func TestAllocSegmentLockTimeout(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 200 * time.Millisecond
	s, _ := mustCreate(t, nil)
	// A live holder (this process) that never lets go.
	if err := s.lock.Lock(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := s.Alloc(bytesSpec, nil)
	wantErr(t, err, futex.ErrTimeout)
	if d := time.Since(t0); d < lockTimeout || d > 10*time.Second {
		t.Fatalf("gave up after %v, want about %v", d, lockTimeout)
	}
	if err := s.lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Alloc(bytesSpec, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAllocSegmentLockNotRecoverable(t *testing.T) {
	s, path := mustCreate(t, nil)
	patch(t, path, offLock, le.AppendUint64(nil, 1<<29)) // the not-recoverable state
	_, err := s.Alloc(bytesSpec, nil)
	wantErr(t, err, robust.ErrNotRecoverable)
}
