package pool

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sync"
	"unsafe"

	"github.com/mpipc/mpipc/internal/typeinfo"
)

// Func is a function the pool's workers can run: tasks of type T, results
// of type R, each a fixed-size pointer-free type (as shared memory holds:
// numbers, bools, arrays and structs of them) or []byte, for anything the
// caller encodes itself. Create Funcs with [NewFunc] at package level, so
// that the parent and every worker (the same binary, re-executed) know
// them under the same name.
type Func[T, R any] struct {
	name         string
	id           uint32
	fn           func(T) (R, error)
	tsize, rsize int // bytes of a fixed-size T or R; -1 for []byte
}

// Tasks and results travel as items of a message: a 32-bit word (the
// length; bit 31 set: an error, whose text follows) and the bytes. A
// fixed-size type is its memory image; []byte is itself.

const (
	itemHeader = 4
	itemErr    = 1 << 31
)

// sizeOf returns the size of V's memory image, or -1 if V is []byte.
func sizeOf[V any]() int {
	var z V
	if _, ok := any(z).([]byte); ok {
		return -1
	}
	ti, err := typeinfo.Of[V]()
	if err != nil {
		panic(fmt.Sprintf("pool: %v (a task or result is a fixed-size pointer-free type or []byte)", err))
	}
	return int(ti.Size)
}

// putItem writes v at dst and returns the bytes written, or -1 if dst is
// too short.
func putItem[V any](dst []byte, size int, v *V) int {
	var b []byte
	if size < 0 {
		b = *(*[]byte)(unsafe.Pointer(v))
	} else {
		b = unsafe.Slice((*byte)(unsafe.Pointer(v)), size)
	}
	n := itemHeader + len(b)
	if n > len(dst) || uint64(len(b)) >= itemErr {
		return -1
	}
	binary.LittleEndian.PutUint32(dst, uint32(len(b)))
	copy(dst[itemHeader:], b)
	return n
}

// putErr writes an error item, truncating its text to fit; -1 if not even
// the header fits.
func putErr(dst []byte, msg string) int {
	if len(dst) < itemHeader {
		return -1
	}
	n := min(len(msg), len(dst)-itemHeader)
	binary.LittleEndian.PutUint32(dst, itemErr|uint32(n))
	copy(dst[itemHeader:], msg[:n])
	return itemHeader + n
}

// getItem reads the item at src into v (a []byte is copied) and returns
// the bytes read, and whether the item is an error (its text in errText).
func getItem[V any](src []byte, size int, v *V) (n int, isErr bool, errText string, err error) {
	if len(src) < itemHeader {
		return 0, false, "", errCorrupt("item header beyond the message")
	}
	w := binary.LittleEndian.Uint32(src)
	l := int(w &^ itemErr)
	if l > len(src)-itemHeader {
		return 0, false, "", errCorrupt("item beyond the message")
	}
	body := src[itemHeader : itemHeader+l]
	if w&itemErr != 0 {
		return itemHeader + l, true, string(body), nil
	}
	if size < 0 {
		*(*[]byte)(unsafe.Pointer(v)) = append([]byte(nil), body...)
	} else {
		if l != size {
			return 0, false, "", errCorrupt(fmt.Sprintf("item of %d bytes, want %d", l, size))
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), size), body)
	}
	return itemHeader + l, false, "", nil
}

// runner is the worker's side of a Func, without its types.
type runner interface {
	// run decodes n tasks from in, runs the function on each and encodes
	// the results into out. It returns the bytes of out used and the
	// number of results that fit (the rest did not).
	run(in []byte, n int, out []byte) (used, fit int, err error)
}

var (
	funcsMu sync.Mutex
	funcs   = map[uint32]runner{}
	names   = map[uint32]string{}
)

// NewFunc registers fn under name and returns its handle. Call it at
// package level (var f = pool.NewFunc(...)): a worker finds the function
// by name in its own copy of the program. NewFunc panics if the name is
// taken (or its 32-bit hash is), or if T or R is neither []byte nor a
// fixed-size pointer-free type.
//
// fn runs in a worker process. An error it returns, or a panic, fails
// that task alone (with the error's text); the worker goes on.
func NewFunc[T, R any](name string, fn func(T) (R, error)) *Func[T, R] {
	h := fnv.New32a()
	h.Write([]byte(name))
	id := h.Sum32()
	f := &Func[T, R]{name: name, id: id, fn: fn}
	f.tsize, f.rsize = sizeOf[T](), sizeOf[R]()
	funcsMu.Lock()
	defer funcsMu.Unlock()
	if old, dup := names[id]; dup {
		panic(fmt.Sprintf("pool: function %q registered twice (or its hash collides with %q)", name, old))
	}
	funcs[id], names[id] = f, name
	return f
}

// Name returns the name the function was registered under.
func (f *Func[T, R]) Name() string { return f.name }

func (f *Func[T, R]) run(in []byte, n int, out []byte) (used, fit int, err error) {
	var t T
	for i := range n {
		k, isErr, _, err := getItem(in, f.tsize, &t)
		if err != nil {
			return used, fit, err
		}
		if isErr {
			return used, fit, errCorrupt("task message holds an error item")
		}
		in = in[k:]
		r, ferr := f.call(t)
		var m int
		if ferr != nil {
			m = putErr(out[used:], ferr.Error())
		} else {
			m = putItem(out[used:], f.rsize, &r)
		}
		if m < 0 {
			return used, i, nil
		}
		used += m
		fit = i + 1
	}
	return used, fit, nil
}

// call runs the function, turning a panic into an error.
func (f *Func[T, R]) call(t T) (r R, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f.fn(t)
}
