package dict

import (
	"fmt"
	"iter"
	"unsafe"

	"github.com/mpipc/mpipc/shm"
)

// Bytes is the bytes-keyed form of a Dict: keys of up to MaxKey bytes,
// values of up to MaxValue bytes, both set at Create. It is what a Python
// d["user:42"] = blob becomes. Keys are compared by their bytes; the empty
// key is a key. Concurrency, crash safety and sizing are a Dict's.
// Obtain one with CreateBytes, OpenBytes, InitBytes or AttachBytes.
//
// Keys of up to 120 bytes cost no allocation.
type Bytes struct {
	_ noCopy
	t table
}

// SizeOfBytes returns the number of bytes a Bytes of the given capacity,
// longest key and longest value occupies (with opts.Stripes).
func SizeOfBytes(capacity, maxKey, maxValue int, opts *Options) (int, error) {
	g, err := bytesGeometry(capacity, maxKey, maxValue, opts)
	if err != nil {
		return 0, err
	}
	return int(g.size), nil
}

func bytesGeometry(capacity, maxKey, maxValue int, opts *Options) (geometry, error) {
	if maxKey <= 0 || maxKey > maxKeyBytes || maxValue < 0 || maxValue > maxValBytes {
		return geometry{}, fmt.Errorf("dict: longest key %d (1..%d), longest value %d (0..%d): %w",
			maxKey, maxKeyBytes, maxValue, maxValBytes, shm.ErrInvalidSize)
	}
	return newGeometry(capacity, uint64(maxKey), uint64(maxValue), true, true, opts.stripes())
}

// InitBytes initializes an empty Bytes in mem (at least SizeOfBytes bytes,
// 8-byte aligned) and returns a handle on it.
func InitBytes(mem []byte, capacity, maxKey, maxValue int, opts *Options) (*Bytes, error) {
	g, err := bytesGeometry(capacity, maxKey, maxValue, opts)
	if err != nil {
		return nil, err
	}
	if err := initMem(mem, g, 0, 0); err != nil {
		return nil, err
	}
	b := &Bytes{}
	b.t.setup(mem, g, opts.registry(), opts.check())
	publish(mem)
	return b, nil
}

// AttachBytes returns a handle on a Bytes that InitBytes set up in mem. It
// fails with shm.ErrTypeMismatch if mem holds a typed Dict.
func AttachBytes(mem []byte, opts *Options) (*Bytes, error) {
	g, err := readGeometry(mem)
	if err != nil {
		return nil, err
	}
	if kfp, vfp := loadFP(mem); !g.varKey || !g.varVal || kfp != 0 || vfp != 0 {
		return nil, fmt.Errorf("dict: a typed dict, not the bytes form: %w", shm.ErrTypeMismatch)
	}
	b := &Bytes{}
	b.t.setup(mem, g, opts.registry(), opts.check())
	if err := b.t.checkLocks(); err != nil {
		return nil, err
	}
	return b, nil
}

func bytesSpec(name string) shm.Spec {
	return shm.Spec{Name: name, Kind: shm.KindDict, KindVersion: Version, Fingerprint: bytesFP}
}

// CreateBytes places a new, empty Bytes named name in seg.
func CreateBytes(seg *shm.Segment, name string, capacity, maxKey, maxValue int, opts *Options) (*Bytes, error) {
	n, err := SizeOfBytes(capacity, maxKey, maxValue, opts)
	if err != nil {
		return nil, err
	}
	sp := bytesSpec(name)
	sp.Size = int64(n)
	var b *Bytes
	mem, err := seg.Alloc(sp, func(mem []byte) (err error) {
		b, err = InitBytes(mem, capacity, maxKey, maxValue, opts.in(seg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dict: creating %q: %w", name, err)
	}
	shm.Keep(seg, b, mem)
	return b, nil
}

// OpenBytes attaches to the Bytes named name in seg.
func OpenBytes(seg *shm.Segment, name string, opts *Options) (*Bytes, error) {
	mem, err := seg.Lookup(bytesSpec(name))
	if err != nil {
		return nil, fmt.Errorf("dict: opening %q: %w", name, err)
	}
	b, err := AttachBytes(mem, opts.in(seg))
	if err == nil {
		shm.Keep(seg, b, mem)
	} else {
		seg.Release(mem)
	}
	return b, err
}

// keyWords returns key as a length word and the bytes, zero-padded, in
// buf when it fits.
func (b *Bytes) keyWords(key []byte, buf *[inlineWords]uint64) []uint64 {
	n := 1 + words(uint64(len(key)))
	var w []uint64
	if n <= inlineWords {
		w = buf[:n]
	} else {
		w = make([]uint64, n)
	}
	w[0] = uint64(len(key))
	if n > 1 {
		w[n-1] = 0
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&w[1])), 8*(n-1)), key)
	}
	return w
}

// MaxKey returns the longest key the Bytes takes.
func (b *Bytes) MaxKey() int { return int(b.t.keyBytes) }

// MaxValue returns the longest value the Bytes takes.
func (b *Bytes) MaxValue() int { return int(b.t.valBytes) }

// Get copies the value of key into buf and returns its length and whether
// key is present. If the value is longer than buf, only len(buf) bytes
// are copied: call again with a buffer of n bytes. It takes no lock and
// never waits for a writer.
func (b *Bytes) Get(key, buf []byte) (n int, ok bool) {
	if len(key) > int(b.t.keyBytes) {
		return 0, false
	}
	var kb [inlineWords]uint64
	k := b.keyWords(key, &kb)
	return b.t.get(k, b.t.hash(k), buf)
}

func (b *Bytes) check(key, val []byte) error {
	if len(key) > int(b.t.keyBytes) {
		return fmt.Errorf("dict: key of %d bytes, longest %d: %w", len(key), b.t.keyBytes, ErrKeyTooLong)
	}
	if len(val) > int(b.t.valBytes) {
		return fmt.Errorf("dict: value of %d bytes, longest %d: %w", len(val), b.t.valBytes, ErrValueTooLong)
	}
	return nil
}

// Set sets the value of key to a copy of val. It returns ErrKeyTooLong,
// ErrValueTooLong, or ErrFull when key is absent and its stripe is full.
func (b *Bytes) Set(key, val []byte) error {
	if err := b.check(key, val); err != nil {
		return err
	}
	var kb [inlineWords]uint64
	k := b.keyWords(key, &kb)
	h := b.t.hash(k)
	s := b.t.stripeOf(h)
	if err := b.t.lock(s); err != nil {
		return err
	}
	slot, free, c := b.t.locate(s, k, h)
	var err error
	if slot >= 0 {
		b.t.replace(s, slot, c, val)
	} else {
		err = b.t.insert(s, k, h, free, val)
	}
	if uerr := b.t.unlock(s); err == nil {
		err = uerr
	}
	return err
}

// Delete removes key and reports whether it was present.
func (b *Bytes) Delete(key []byte) (bool, error) {
	if len(key) > int(b.t.keyBytes) {
		return false, nil
	}
	var kb [inlineWords]uint64
	k := b.keyWords(key, &kb)
	h := b.t.hash(k)
	s := b.t.stripeOf(h)
	if err := b.t.lock(s); err != nil {
		return false, err
	}
	slot, _, c := b.t.locate(s, k, h)
	if slot >= 0 {
		b.t.remove(s, slot, c)
	}
	return slot >= 0, b.t.unlock(s)
}

// Len returns the number of entries (see Dict.Len).
func (b *Bytes) Len() int { return b.t.length() }

// Capacity returns the capacity the Bytes was created with.
func (b *Bytes) Capacity() int { return int(b.t.capacity) }

// Clear removes every entry (see Dict.Clear).
func (b *Bytes) Clear() error { return b.t.clear() }

// All returns an iterator over the entries, with the consistency of
// Dict.All. The key and value slices are valid only until the loop body
// returns; copy them to keep them.
func (b *Bytes) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		var buf []uint64
		stride := int(b.t.kw + b.t.vw)
		for s := range b.t.nstripes {
			var err error
			buf, err = b.t.snapshot(s, buf[:0])
			if err != nil {
				return
			}
			for i := 0; i+stride <= len(buf); i += stride {
				k := b.field(buf[i:], b.t.keyBytes)
				v := b.field(buf[i+int(b.t.kw):], b.t.valBytes)
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// field returns the bytes of a length-prefixed field in w, the length
// clamped to max.
func (b *Bytes) field(w []uint64, max uint64) []byte {
	n := min(w[0], max)
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[1])), n)
}

// State returns a snapshot of the Bytes, for inspection.
func (b *Bytes) State() State { return b.t.state() }
