package typeinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// ErrUnsupportedType is returned (wrapped, naming the field) when a type
// cannot be placed in shared memory.
var ErrUnsupportedType = errors.New("typeinfo: unsupported type")

// Info describes an accepted type.
type Info struct {
	Size        uintptr // unsafe.Sizeof of the type
	Align       uintptr // unsafe.Alignof of the type
	Fingerprint uint64  // layout hash, never 0 (see the package documentation)
	Desc        string  // human-readable layout, e.g. "struct{0:int64 8:[4]float64}"
}

type entry struct {
	info Info
	err  error
}

var cache sync.Map // reflect.Type -> *entry

// Of describes T, or returns an error wrapping ErrUnsupportedType. The
// result is cached: after the first call for a T, Of allocates nothing.
func Of[T any]() (Info, error) {
	return OfType(reflect.TypeFor[T]())
}

// OfType is Of for a reflect.Type.
func OfType(t reflect.Type) (Info, error) {
	if e, ok := cache.Load(t); ok {
		e := e.(*entry)
		return e.info, e.err
	}
	e := compute(t)
	actual, _ := cache.LoadOrStore(t, e)
	e = actual.(*entry)
	return e.info, e.err
}

func compute(t reflect.Type) *entry {
	if t == nil {
		return &entry{err: fmt.Errorf("typeinfo: nil type: %w", ErrUnsupportedType)}
	}
	var w walker
	w.u64(uint64(t.Size()))
	w.u64(uint64(t.Align()))
	if err := w.node(t, t.String()); err != nil {
		return &entry{err: err}
	}
	if t.Size() == 0 {
		return &entry{err: fmt.Errorf("typeinfo: %s has size zero: %w", t, ErrUnsupportedType)}
	}
	fp := fnv64a(w.buf)
	if fp == 0 {
		fp = 1
	}
	return &entry{info: Info{Size: t.Size(), Align: uintptr(t.Align()), Fingerprint: fp, Desc: w.desc.String()}}
}

type walker struct {
	buf  []byte
	desc strings.Builder
}

func (w *walker) u64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }

const (
	classBool    = 1
	classInt     = 2
	classUint    = 3
	classFloat   = 4
	classComplex = 5
	tagArray     = 6
	tagStruct    = 7
)

// node appends the description of t; path names t for error messages.
func (w *walker) node(t reflect.Type, path string) error {
	scalar := func(class byte, name string) error {
		w.buf = append(w.buf, class)
		w.u64(uint64(t.Size()))
		w.desc.WriteString(name)
		w.desc.WriteString(strconv.Itoa(int(t.Size()) * 8))
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		w.buf = append(w.buf, classBool)
		w.u64(1)
		w.desc.WriteString("bool")
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar(classInt, "int")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar(classUint, "uint")
	case reflect.Float32, reflect.Float64:
		return scalar(classFloat, "float")
	case reflect.Complex64, reflect.Complex128:
		return scalar(classComplex, "complex")
	case reflect.Array:
		w.buf = append(w.buf, tagArray)
		w.u64(uint64(t.Len()))
		w.desc.WriteString("[" + strconv.Itoa(t.Len()) + "]")
		return w.node(t.Elem(), path+"[]")
	case reflect.Struct:
		w.buf = append(w.buf, tagStruct)
		w.u64(uint64(t.Size()))
		w.u64(uint64(t.NumField()))
		w.desc.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				w.desc.WriteByte(' ')
			}
			w.u64(uint64(f.Offset))
			w.desc.WriteString(strconv.Itoa(int(f.Offset)) + ":")
			if err := w.node(f.Type, path+"."+f.Name); err != nil {
				return err
			}
		}
		w.desc.WriteString("}")
		return nil
	}
	// Pointer, UnsafePointer, Uintptr, Slice, String, Map, Interface,
	// Chan, Func.
	return fmt.Errorf("typeinfo: %s is %s (kind %s), which another process cannot read: %w",
		path, t, t.Kind(), ErrUnsupportedType)
}

func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// FieldMask returns a slice of t.Size() bytes, 0xff where a byte belongs to
// a field of t and 0 where it is padding. t must be accepted by OfType.
// Objects that compare values bytewise (compare-and-swap) mask padding
// with it, since Go does not preserve padding bytes across copies.
func FieldMask(t reflect.Type) []byte {
	m := make([]byte, t.Size())
	mark(m, t, 0)
	return m
}

func mark(m []byte, t reflect.Type, off uintptr) {
	switch t.Kind() {
	case reflect.Array:
		es := t.Elem().Size()
		for i := range t.Len() {
			mark(m, t.Elem(), off+uintptr(i)*es)
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			mark(m, f.Type, off+f.Offset)
		}
	default:
		for i := range t.Size() {
			m[off+i] = 0xff
		}
	}
}
