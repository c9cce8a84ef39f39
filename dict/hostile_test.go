//go:build linux

package dict

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/robust"
	"github.com/mpipc/mpipc/shm"
)

// TestAttachCorrupt: each header field a peer may have corrupted makes
// Attach fail with shm.ErrCorrupt, never a handle that reads outside mem.
func TestAttachCorrupt(t *testing.T) {
	n, _ := SizeOf[int64, int64](100, nil)
	fresh := func() []byte {
		mem := alignedMem(n)
		if _, err := Init[int64, int64](mem, 100, nil); err != nil {
			t.Fatal(err)
		}
		return mem
	}
	cases := []struct {
		name string
		mess func(mem []byte) []byte
	}{
		{"short", func(m []byte) []byte { return m[:64] }},
		{"truncated", func(m []byte) []byte { return m[:len(m)-8] }},
		{"misaligned", func(m []byte) []byte { return m[4:] }},
		{"magic", func(m []byte) []byte { *u32(m, offMagic) = 0; return m }},
		{"version", func(m []byte) []byte { *u32(m, offVersion) = 9; return m }},
		{"flags", func(m []byte) []byte { *u32(m, offFlags) = 4; return m }},
		{"stripes", func(m []byte) []byte { *u32(m, offSBits) = 40; return m }},
		{"more stripes", func(m []byte) []byte { *u32(m, offSBits) = 10; return m }},
		{"slots not a power of two", func(m []byte) []byte { *u64(m, offSlots) = 100; return m }},
		{"slots huge", func(m []byte) []byte { *u64(m, offSlots) = 1 << 62; return m }},
		{"slots too few", func(m []byte) []byte { *u64(m, offSlots) = 8; return m }},
		{"capacity zero", func(m []byte) []byte { *u64(m, offCap) = 0; return m }},
		{"capacity huge", func(m []byte) []byte { *u64(m, offCap) = 1 << 60; return m }},
		{"lock word", func(m []byte) []byte { *u64(m, headerSize+sLock) = 1 << 28; return m }},
	}
	for _, c := range cases {
		mem := c.mess(fresh())
		if _, err := Attach[int64, int64](mem, nil); !errors.Is(err, shm.ErrCorrupt) {
			t.Errorf("%s: Attach: %v", c.name, err)
		}
	}
	// Key and value sizes are the type check.
	mem := fresh()
	*u64(mem, offValBytes) = 1 << 40
	if _, err := Attach[int64, int64](mem, nil); !errors.Is(err, shm.ErrCorrupt) {
		t.Errorf("value size: %v", err)
	}
	mem = fresh()
	*u64(mem, offKFP) = 1
	if _, err := Attach[int64, int64](mem, nil); !errors.Is(err, shm.ErrTypeMismatch) {
		t.Errorf("key fingerprint: %v", err)
	}
}

// exercise runs every operation of d once or a few times; on garbage
// they may return anything, but must return.
func exercise(d *Dict[uint32, uint64], rng *rand.Rand) {
	for range 20 {
		k := uint32(rng.IntN(64))
		d.Get(k)
		d.Set(k, uint64(k))
		d.Delete(uint32(rng.IntN(64)))
		d.Update(k, func(old uint64, ok bool) (uint64, bool) { return old + 1, true })
		d.LoadOrStore(k+1, 1)
		d.CompareAndSwap(k, 1, 2)
	}
	for range d.All() {
	}
	d.Len()
	d.State()
}

func exerciseBytes(b *Bytes, rng *rand.Rand) {
	buf := make([]byte, 8)
	for range 20 {
		k := []byte{byte(rng.IntN(64)), 1, 2}
		b.Get(k, buf)
		b.Set(k, k)
		b.Delete(k[:1])
	}
	for k, v := range b.All() {
		_, _ = len(k), len(v)
	}
	b.Len()
	b.State()
}

// TestHostileWords: a peer writing random words anywhere in a dict's
// memory, while this process reads and writes it, makes nothing panic,
// index outside the mapping or hang.
func TestHostileWords(t *testing.T) {
	opts := &Options{Stripes: 4, CheckInterval: time.Millisecond, Registry: testRegistry()}
	n, _ := SizeOf[uint32, uint64](64, opts)
	mem := alignedMem(n)
	d, err := Init[uint32, uint64](mem, 64, opts)
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint32(48) {
		d.Set(k, uint64(k))
	}
	dur := time.Second
	if testing.Short() {
		dur = 200 * time.Millisecond
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), len(mem)/8)
	rng := rand.New(rand.NewPCG(11, 12))
	var stop atomic.Bool
	var writes, ops atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the hostile peer
		defer wg.Done()
		r := rand.New(rand.NewPCG(13, 14))
		for !stop.Load() {
			i := r.IntN(len(words))
			var w uint64
			switch r.IntN(4) {
			case 0:
				w = r.Uint64()
			case 1:
				w = uint64(r.IntN(8)) // small: states, counts
			case 2:
				w = 1<<63 - uint64(r.IntN(3))
			}
			atomic.StoreUint64(&words[i], w)
			writes.Add(1)
			if writes.Load()%64 == 0 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(dur); time.Now().Before(end); {
			exercise(d, rng)
			ops.Add(1)
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("operations on a dict under a hostile peer hung")
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d rounds of every operation under %d hostile word writes", ops.Load(), writes.Load())
}

// TestHostileBytes: lengths written by a peer into a Bytes are clamped.
func TestHostileBytes(t *testing.T) {
	opts := &Options{Stripes: 2, CheckInterval: time.Millisecond, Registry: testRegistry()}
	n, _ := SizeOfBytes(32, 8, 8, opts)
	mem := alignedMem(n)
	b, err := InitBytes(mem, 32, 8, 8, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		b.Set([]byte{byte(i), 1, 2}, []byte("value"))
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), len(mem)/8)
	rng := rand.New(rand.NewPCG(15, 16))
	for range 200 {
		for range 4 {
			i := headerSize/8 + rng.IntN(len(words)-headerSize/8)
			words[i] = []uint64{rng.Uint64(), 1 << 40, 9, 1}[rng.IntN(4)]
		}
		exerciseBytes(b, rng)
	}
}

// FuzzAttach writes the fuzzed bytes over a dict's memory, at the offset
// their first two bytes name (so that inputs stay small and reach every
// part of the layout), then Attaches as both forms: an error or a handle,
// and on a handle every operation returns, without a crash or a hang.
func FuzzAttach(f *testing.F) {
	opts := &Options{Stripes: 2, CheckInterval: time.Millisecond, Registry: testRegistry()}
	n, _ := SizeOf[uint32, uint64](16, opts)
	bn, _ := SizeOfBytes(16, 8, 8, opts)
	base := func(bytesForm bool) []byte {
		if bytesForm {
			mem := alignedMem(bn)
			b, _ := InitBytes(mem, 16, 8, 8, opts)
			b.Set([]byte("k"), []byte("v"))
			b.Set([]byte("key2"), []byte("value2"))
			return mem
		}
		mem := alignedMem(n)
		d, _ := Init[uint32, uint64](mem, 16, opts)
		for k := range uint32(10) {
			d.Set(k, uint64(k))
		}
		d.Delete(3)
		return mem
	}
	f.Add(false, []byte{0, 0})
	f.Add(false, []byte{0, 0, 0, 0, 0, 0})                // magic
	f.Add(false, append([]byte{12, 0}, 0xff, 0xff, 0, 0)) // stripes
	f.Add(false, append([]byte{56, 0}, 0, 1))             // slots
	f.Add(false, append([]byte{128, 0}, 1, 0, 0, 0, 0, 0, 0, 0x40))
	f.Add(true, []byte{0x80, 1, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, bytesForm bool, data []byte) {
		if len(data) < 2 {
			return
		}
		mem := base(bytesForm)
		off := int(data[0]) | int(data[1])<<8
		if off >= len(mem) {
			mem = mem[:off%len(mem)] // a truncated dict
		} else {
			copy(mem[off:], data[2:])
		}
		stop := time.AfterFunc(10*time.Second, func() { panic("dict: operation hung on fuzzed input") }).Stop
		defer stop()
		rng := rand.New(rand.NewPCG(uint64(len(data)), 1))
		if d, err := Attach[uint32, uint64](mem, opts); err == nil {
			exercise(d, rng)
		} else if !errors.Is(err, shm.ErrCorrupt) && !errors.Is(err, shm.ErrTypeMismatch) {
			t.Fatalf("Attach: unexpected error %v", err)
		}
		if b, err := AttachBytes(mem, opts); err == nil {
			exerciseBytes(b, rng)
		} else if !errors.Is(err, shm.ErrCorrupt) && !errors.Is(err, shm.ErrTypeMismatch) {
			t.Fatalf("AttachBytes: unexpected error %v", err)
		}
	})
}

// TestLockWordClearedUnderWriter: a peer that clears a stripe's lock word
// while a writer holds it makes that writer's unlock fail with
// robust.ErrNotLocked (the write itself is done), and the dict goes on.
func TestLockWordClearedUnderWriter(t *testing.T) {
	d, _ := newDict[int64, int64](t, 8, &Options{Stripes: 1})
	_, _, err := d.Update(1, func(int64, bool) (int64, bool) {
		*d.t.word(0, sLock) = 0
		return 5, true
	})
	if !errors.Is(err, robust.ErrNotLocked) {
		t.Fatalf("Update: %v", err)
	}
	if v, ok := d.Get(1); !ok || v != 5 {
		t.Fatal("the write before the failed unlock is lost")
	}
	if err := d.Set(2, 2); err != nil {
		t.Fatal(err)
	}
}
