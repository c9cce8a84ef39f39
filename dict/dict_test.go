//go:build linux

package dict

import (
	"errors"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/typeinfo"
	"github.com/mpipc/mpipc/shm"
)

// alignedMem returns n zeroed bytes, 64-byte aligned.
func alignedMem(n int) []byte {
	b := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	return b[off : off+n : off+n]
}

// testRegistry is a process registry for dicts in memory of the tests'
// own, so that a lock word naming a process nobody runs is recognised as
// dead (without one, nothing can be proven dead).
var testRegistry = sync.OnceValue(func() *shm.Registry {
	seg, err := shm.CreateAnonymous(0)
	if err != nil {
		panic(err)
	}
	return seg.Registry()
})

func newDict[K comparable, V any](tb testing.TB, capacity int, opts *Options) (*Dict[K, V], []byte) {
	tb.Helper()
	n, err := SizeOf[K, V](capacity, opts)
	if err != nil {
		tb.Fatal(err)
	}
	mem := alignedMem(n)
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Registry == nil {
		o.Registry = testRegistry()
	}
	d, err := Init[K, V](mem, capacity, &o)
	if err != nil {
		tb.Fatal(err)
	}
	return d, mem
}

// padded has 7 bytes of padding after A.
type padded struct {
	A uint8
	B uint64
}

func TestBasic(t *testing.T) {
	d, _ := newDict[int64, int64](t, 100, nil)
	if _, ok := d.Get(1); ok {
		t.Fatal("Get on empty dict found a key")
	}
	for i := int64(0); i < 100; i++ {
		if err := d.Set(i, -i); err != nil {
			t.Fatal(err)
		}
	}
	if d.Len() != 100 {
		t.Fatalf("Len %d", d.Len())
	}
	for i := int64(0); i < 100; i++ {
		if v, ok := d.Get(i); !ok || v != -i {
			t.Fatalf("Get(%d) = %d, %v", i, v, ok)
		}
	}
	if err := d.Set(5, 55); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Get(5); v != 55 {
		t.Fatalf("after overwrite: %d", v)
	}
	if ok, err := d.Delete(5); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, _ := d.Delete(5); ok {
		t.Fatal("second Delete found the key")
	}
	if _, ok := d.Get(5); ok {
		t.Fatal("Get after Delete")
	}
	if d.Len() != 99 {
		t.Fatalf("Len %d", d.Len())
	}
	v, loaded, err := d.LoadOrStore(5, 7)
	if v != 7 || loaded || err != nil {
		t.Fatalf("LoadOrStore absent: %v %v %v", v, loaded, err)
	}
	v, loaded, _ = d.LoadOrStore(5, 8)
	if v != 7 || !loaded {
		t.Fatalf("LoadOrStore present: %v %v", v, loaded)
	}
	if ok, _ := d.CompareAndSwap(5, 8, 9); ok {
		t.Fatal("CAS with wrong old")
	}
	if ok, _ := d.CompareAndSwap(5, 7, 9); !ok {
		t.Fatal("CAS with right old")
	}
	if ok, _ := d.CompareAndSwap(1000, 0, 1); ok {
		t.Fatal("CAS of an absent key")
	}
	nv, ok, err := d.Update(5, func(old int64, ok bool) (int64, bool) { return old + 1, true })
	if nv != 10 || !ok || err != nil {
		t.Fatalf("Update: %v %v %v", nv, ok, err)
	}
	nv, ok, _ = d.Update(5, func(old int64, ok bool) (int64, bool) { return 0, false })
	if ok || nv != 0 {
		t.Fatal("Update deleting")
	}
	if _, ok := d.Get(5); ok {
		t.Fatal("Update did not delete")
	}
	nv, ok, _ = d.Update(500, func(old int64, ok bool) (int64, bool) {
		if ok {
			t.Error("Update of an absent key says present")
		}
		return 3, true
	})
	if nv != 3 || !ok {
		t.Fatal("Update inserting")
	}
	got := map[int64]int64{}
	for k, v := range d.All() {
		if _, dup := got[k]; dup {
			t.Fatalf("All yields %d twice", k)
		}
		got[k] = v
	}
	if len(got) != d.Len() || got[500] != 3 || got[7] != -7 {
		t.Fatalf("All: %d entries, Len %d", len(got), d.Len())
	}
	for range d.All() {
		break // early stop
	}
	if err := d.Clear(); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 0 {
		t.Fatal("Len after Clear")
	}
	if _, ok := d.Get(7); ok {
		t.Fatal("Get after Clear")
	}
}

func TestPaddedKey(t *testing.T) {
	d, _ := newDict[padded, padded](t, 10, nil)
	var k1, k2 padded
	// Same fields, different padding bytes.
	b := unsafe.Slice((*byte)(unsafe.Pointer(&k2)), unsafe.Sizeof(k2))
	for i := range b {
		b[i] = 0xee
	}
	k1.A, k1.B, k2.A, k2.B = 1, 2, 1, 2
	if err := d.Set(k1, padded{A: 9}); err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Get(k2); !ok || v.A != 9 {
		t.Fatal("key with other padding bytes not found")
	}
	if ok, _ := d.CompareAndSwap(k2, padded{A: 9}, padded{A: 10}); !ok {
		t.Fatal("CAS")
	}
}

func TestWideTypes(t *testing.T) {
	type big struct{ A [40]uint32 } // 160 bytes: beyond the inline buffer
	d, _ := newDict[big, [3]byte](t, 50, nil)
	for i := range 50 {
		var k big
		k.A[39] = uint32(i)
		if err := d.Set(k, [3]byte{byte(i), 1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		var k big
		k.A[39] = uint32(i)
		if v, ok := d.Get(k); !ok || v != [3]byte{byte(i), 1, 2} {
			t.Fatalf("Get %d: %v %v", i, v, ok)
		}
	}
}

// TestFull: with one stripe, the capacity is exact; Delete makes room.
func TestFull(t *testing.T) {
	d, _ := newDict[int32, int32](t, 100, &Options{Stripes: 1})
	for i := range int32(100) {
		if err := d.Set(i, i); err != nil {
			t.Fatalf("Set %d: %v", i, err)
		}
	}
	if err := d.Set(100, 0); !errors.Is(err, ErrFull) {
		t.Fatalf("Set beyond capacity: %v", err)
	}
	if _, _, err := d.LoadOrStore(100, 0); !errors.Is(err, ErrFull) {
		t.Fatalf("LoadOrStore beyond capacity: %v", err)
	}
	if _, _, err := d.Update(100, func(int32, bool) (int32, bool) { return 1, true }); !errors.Is(err, ErrFull) {
		t.Fatalf("Update beyond capacity: %v", err)
	}
	if err := d.Set(5, 6); err != nil {
		t.Fatalf("overwrite in a full dict: %v", err)
	}
	if ok, _ := d.Delete(3); !ok {
		t.Fatal("Delete")
	}
	if err := d.Set(100, 0); err != nil {
		t.Fatalf("Set after Delete: %v", err)
	}
	if d.Len() != 100 {
		t.Fatalf("Len %d", d.Len())
	}
}

// TestFullStriped: with many stripes, keys spread by the hash fill the
// dict to at least its capacity before ErrFull.
func TestFullStriped(t *testing.T) {
	for _, c := range []int{1000, 5000} {
		d, _ := newDict[int64, int64](t, c, nil)
		n := 0
		for i := int64(0); ; i++ {
			err := d.Set(i, i)
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		st := d.State()
		t.Logf("capacity %d, %d stripes: ErrFull after %d entries", c, st.Stripes, n)
		if n < c || n > st.Stripes*st.Limit {
			t.Errorf("capacity %d: full after %d entries", c, n)
		}
	}
}

// TestChurn: 10× capacity of inserts and deletes keeps probe lengths
// bounded (tombstones are emptied or rebuilt away).
func TestChurn(t *testing.T) {
	const c = 4096
	d, _ := newDict[uint64, uint64](t, c, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[uint64]bool{}
	keys := make([]uint64, 0, c)
	for len(keys) < c*3/4 {
		k := rng.Uint64()
		if !live[k] {
			live[k] = true
			keys = append(keys, k)
			if err := d.Set(k, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := d.State()
	for range 10 * c {
		i := rng.IntN(len(keys))
		if ok, err := d.Delete(keys[i]); !ok || err != nil {
			t.Fatalf("Delete: %v %v", ok, err)
		}
		delete(live, keys[i])
		k := rng.Uint64()
		for live[k] {
			k = rng.Uint64()
		}
		live[k] = true
		keys[i] = k
		if err := d.Set(k, k); err != nil {
			t.Fatal(err)
		}
	}
	after := d.State()
	for _, k := range keys {
		if v, ok := d.Get(k); !ok || v != k {
			t.Fatalf("Get after churn")
		}
	}
	var rebuilds uint64
	for _, s := range after.Stripe {
		rebuilds += s.Rebuilds
	}
	t.Logf("before churn: len %d, mean probe %.2f, max %d, mean miss probe %.2f, tombstones %d",
		before.Len, float64(before.MeanProbeX100)/100, before.MaxProbe, float64(before.MeanMissProbeX100)/100, before.Tombstones)
	t.Logf("after %d deletes+inserts: len %d, mean probe %.2f, max %d, mean miss probe %.2f, tombstones %d, rebuilds %d",
		10*c, after.Len, float64(after.MeanProbeX100)/100, after.MaxProbe, float64(after.MeanMissProbeX100)/100, after.Tombstones, rebuilds)
	if after.Len != len(keys) {
		t.Fatalf("Len %d, want %d", after.Len, len(keys))
	}
	// Bounded: with at most 3/4 of a region used, misses stay short.
	if after.MeanMissProbeX100 > 1000 || after.MaxProbe > after.Slots {
		t.Errorf("probe lengths grew: %+v", after)
	}
}

// TestModel runs random operations against a Go map.
func TestModel(t *testing.T) {
	d, _ := newDict[uint16, uint32](t, 300, &Options{Stripes: 4})
	m := map[uint16]uint32{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 100000 {
		k := uint16(rng.IntN(400))
		switch rng.IntN(5) {
		case 0, 1:
			v := rng.Uint32()
			err := d.Set(k, v)
			if errors.Is(err, ErrFull) {
				if _, ok := m[k]; ok {
					t.Fatal("ErrFull on overwrite")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			m[k] = v
		case 2:
			ok, _ := d.Delete(k)
			_, want := m[k]
			if ok != want {
				t.Fatalf("op %d: Delete(%d) = %v, want %v", i, k, ok, want)
			}
			delete(m, k)
		default:
			v, ok := d.Get(k)
			w, want := m[k]
			if ok != want || v != w {
				t.Fatalf("op %d: Get(%d) = %d %v, want %d %v", i, k, v, ok, w, want)
			}
		}
	}
	if d.Len() != len(m) {
		t.Fatalf("Len %d, want %d", d.Len(), len(m))
	}
	got := maps.Collect(d.All())
	if !maps.Equal(got, m) {
		t.Fatal("All differs from the model")
	}
}

// TestConcurrentGoroutines: writers and lock-free readers in one process
// (for the race detector); values carry a checksum.
func TestConcurrentGoroutines(t *testing.T) {
	d, _ := newDict[uint32, [4]uint64](t, 256, &Options{Stripes: 4})
	n := 20000
	if testing.Short() {
		n = 5000
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				k := uint32((i*7 + w) % 200)
				x := uint64(i)<<8 | uint64(w)
				d.Set(k, checked(x))
				if i%5 == 0 {
					d.Delete(k)
				}
			}
		}()
	}
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if v, ok := d.Get(uint32(i % 200)); ok && !valid(v) {
				t.Errorf("torn value %x", v)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rwg.Wait()
}

// checked returns a value whose words check each other.
func checked(x uint64) [4]uint64 {
	return [4]uint64{x, ^x, x * m1, (x ^ 0x5555) * m2}
}

func valid(v [4]uint64) bool { return v == checked(v[0]) }

func TestBytes(t *testing.T) {
	n, err := SizeOfBytes(100, 32, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := alignedMem(n)
	b, err := InitBytes(mem, 100, 32, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]byte("user:42"), []byte("blob")); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]byte(""), []byte{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(make([]byte, 33), nil); !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("long key: %v", err)
	}
	if err := b.Set([]byte("k"), make([]byte, 101)); !errors.Is(err, ErrValueTooLong) {
		t.Fatalf("long value: %v", err)
	}
	buf := make([]byte, 100)
	if n, ok := b.Get([]byte("user:42"), buf); !ok || string(buf[:n]) != "blob" {
		t.Fatalf("Get: %q %v", buf[:n], ok)
	}
	if n, ok := b.Get([]byte("user:42"), buf[:2]); !ok || n != 4 || string(buf[:2]) != "bl" {
		t.Fatalf("Get into a short buffer: %d %v", n, ok)
	}
	if _, ok := b.Get([]byte("user:4"), buf); ok {
		t.Fatal("prefix found")
	}
	if n, ok := b.Get(nil, buf); !ok || n != 0 {
		t.Fatal("empty key")
	}
	if _, ok := b.Get(make([]byte, 40), buf); ok {
		t.Fatal("over-long key found")
	}
	long := make([]byte, 100)
	for i := range long {
		long[i] = byte(i)
	}
	key := []byte("abcdefghijklmnopqrstuvwxyz012345")
	if err := b.Set(key, long); err != nil {
		t.Fatal(err)
	}
	if n, ok := b.Get(key, buf); !ok || string(buf[:n]) != string(long) {
		t.Fatal("long value")
	}
	got := map[string]string{}
	for k, v := range b.All() {
		got[string(k)] = string(v)
	}
	if len(got) != 3 || got["user:42"] != "blob" || got[""] != "" || got[string(key)] != string(long) {
		t.Fatalf("All: %q", got)
	}
	if ok, _ := b.Delete([]byte("user:42")); !ok || b.Len() != 2 {
		t.Fatal("Delete")
	}
	if _, err := Attach[int64, int64](mem, nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("Attach typed to bytes: %v", err)
	}
	if _, err := AttachBytes(mem, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSegment(t *testing.T) {
	seg, err := shm.Create(proctest.TempName(t), &shm.Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	d, err := Create[int64, float64](seg, "prices", 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create[int64, float64](seg, "prices", 1000, nil); !errors.Is(err, shm.ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	d.Set(1, 2.5)
	e, err := Open[int64, float64](seg, "prices", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := e.Get(1); !ok || v != 2.5 {
		t.Fatal("Open handle does not see Set")
	}
	if _, err := Open[int64, int64](seg, "prices", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("Open with another V: %v", err)
	}
	if _, err := Open[float64, float64](seg, "prices", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("Open with another K: %v", err)
	}
	if _, err := OpenBytes(seg, "prices", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("OpenBytes of a typed dict: %v", err)
	}
	if _, err := CreateBytes(seg, "blobs", 100, 16, 64, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBytes(seg, "blobs", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Open[int64, float64](seg, "blobs", nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("Open typed of a bytes dict: %v", err)
	}
	if _, err := Open[int64, float64](seg, "nope", nil); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Open missing: %v", err)
	}
	if _, err := Create[int64, []int](seg, "bad", 10, nil); !errors.Is(err, typeinfo.ErrUnsupportedType) {
		t.Fatalf("Create with a slice value: %v", err)
	}
	// Too large for the segment; with a 32-bit int, too large to name.
	if _, err := Create[int64, int64](seg, "huge", 1<<28, nil); !errors.Is(err, shm.ErrFull) &&
		!(strconv.IntSize == 32 && errors.Is(err, shm.ErrInvalidSize)) {
		t.Fatalf("Create too large for the segment: %v", err)
	}
}

// TestAttachType: Attach with a same-size, differently shaped type fails.
func TestAttachType(t *testing.T) {
	_, mem := newDict[[2]int32, int64](t, 10, nil)
	if _, err := Attach[int64, int64](mem, nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Fatalf("%v", err)
	}
	if _, err := Attach[[2]int32, int64](mem, nil); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidSizes(t *testing.T) {
	for _, c := range []int{0, -1, 1 << 30} {
		if _, err := SizeOf[int64, int64](c, nil); !errors.Is(err, shm.ErrInvalidSize) {
			t.Errorf("capacity %d: %v", c, err)
		}
	}
	if _, err := SizeOf[int64, int64](10, &Options{Stripes: MaxStripes + 1}); !errors.Is(err, shm.ErrInvalidSize) {
		t.Errorf("stripes: %v", err)
	}
	if _, err := SizeOfBytes(10, 0, 10, nil); !errors.Is(err, shm.ErrInvalidSize) {
		t.Errorf("maxKey 0: %v", err)
	}
	if _, err := Init[int64, int64](alignedMem(64), 10, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("Init in too little memory: %v", err)
	}
}

// TestRebuild: a stripe that fills with tombstones is rebuilt into its
// other region, with the same contents and no tombstones.
func TestRebuild(t *testing.T) {
	d, _ := newDict[uint32, uint32](t, 64, &Options{Stripes: 1})
	m := map[uint32]uint32{}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range uint32(64) {
		d.Set(i, i)
		m[i] = i
	}
	next := uint32(64)
	for range 2000 {
		var victim uint32
		for k := range m {
			victim = k
			break
		}
		if ok, _ := d.Delete(victim); !ok {
			t.Fatal("Delete")
		}
		delete(m, victim)
		v := rng.Uint32()
		if err := d.Set(next, v); err != nil {
			t.Fatal(err)
		}
		m[next] = v
		next++
	}
	st := d.State()
	if st.Stripe[0].Rebuilds == 0 {
		t.Fatalf("no rebuild in a full stripe's churn: %+v", st)
	}
	got := maps.Collect(d.All())
	if !maps.Equal(got, m) || d.Len() != 64 {
		t.Fatalf("contents after %d rebuilds differ", st.Stripe[0].Rebuilds)
	}
	t.Logf("%d rebuilds; mean probe %.2f, max %d, mean miss probe %.2f, tombstones %d",
		st.Stripe[0].Rebuilds, float64(st.MeanProbeX100)/100, st.MaxProbe, float64(st.MeanMissProbeX100)/100, st.Tombstones)
}

// TestUpdatePanics: a function that panics inside Update leaves the dict
// unchanged and its stripe unlocked.
func TestUpdatePanics(t *testing.T) {
	d, _ := newDict[int64, int64](t, 8, &Options{Stripes: 1})
	d.Set(1, 1)
	func() {
		defer func() { recover() }()
		d.Update(1, func(int64, bool) (int64, bool) { panic("boom") })
	}()
	if v, _ := d.Get(1); v != 1 || len(d.State().Held) != 0 {
		t.Fatalf("after a panicking Update: value %d, %+v", v, d.State().Held)
	}
	if err := d.Set(1, 2); err != nil {
		t.Fatal(err)
	}
}
