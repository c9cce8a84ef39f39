package main

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// errType is a -type argument stat cannot read with.
var errType = errors.New("unsupported type")

// statShown is how many elements of an Array stat shows.
const statShown = 64

// contents reads an object's contents as text.
type contents func(seg *shm.Segment, o shm.Object) (string, error)

// scalars are the element types -type accepts, by Go name.
var scalars = map[string]reflect.Type{
	"bool":    reflect.TypeFor[bool](),
	"int8":    reflect.TypeFor[int8](),
	"int16":   reflect.TypeFor[int16](),
	"int32":   reflect.TypeFor[int32](),
	"int64":   reflect.TypeFor[int64](),
	"uint8":   reflect.TypeFor[uint8](),
	"uint16":  reflect.TypeFor[uint16](),
	"uint32":  reflect.TypeFor[uint32](),
	"uint64":  reflect.TypeFor[uint64](),
	"float32": reflect.TypeFor[float32](),
	"float64": reflect.TypeFor[float64](),
}

// maxTypeSize bounds the size of a -type, so that [N]T with a huge N is
// refused rather than built.
const maxTypeSize = 1 << 24

// parseType turns a -type argument in Go syntax into the reader of a
// Value or Array of that element type: bool, int8..int64, uint8..uint64,
// float32, float64, or arrays of them, nested or not ([4]float64,
// [2][3]int32). The type is built at run time with reflect and the object
// read through value.LoadBytes and array.ReadBytes, which take a
// reflect.Type: no Value[T] or Array[T] is compiled per T.
func parseType(s string) (contents, error) {
	t, err := typeOf(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return func(seg *shm.Segment, o shm.Object) (string, error) { return read(seg, o, t) }, nil
}

// typeOf parses [N]...T.
func typeOf(s string) (reflect.Type, error) {
	rest, ok := strings.CutPrefix(s, "[")
	if !ok {
		if t := scalars[s]; t != nil {
			return t, nil
		}
		return nil, fmt.Errorf("want bool, int8..int64, uint8..uint64, float32 or float64, or [N] of them: %w", errType)
	}
	num, elem, ok := strings.Cut(rest, "]")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || strings.TrimLeft(num, "0123456789") != "" {
		return nil, fmt.Errorf("array length %q: want [N]T with N a positive integer: %w", num, errType)
	}
	et, err := typeOf(elem)
	if err != nil {
		return nil, err
	}
	if n > maxTypeSize/int(et.Size()) {
		return nil, fmt.Errorf("[%d]%s is over %d bytes: %w", n, et, maxTypeSize, errType)
	}
	return reflect.ArrayOf(n, et), nil
}

// read reads o as a Value or an Array of element type t and formats its
// contents: a Value as Load reads it (never waiting for a writer), an
// Array's first statShown elements without its lock (a writer at that
// moment may tear the snapshot). The type is checked against the object's
// recorded type (shm.ErrTypeMismatch).
func read(seg *shm.Segment, o shm.Object, t reflect.Type) (string, error) {
	switch o.Kind {
	case shm.KindValue:
		b, err := value.LoadBytes(seg, o.Name, t)
		if err != nil {
			return "", err
		}
		return fmt.Sprint(decode(b, t, 1).Index(0)), nil
	case shm.KindArray:
		b, n, err := array.ReadBytes(seg, o.Name, t, statShown)
		if err != nil {
			return "", err
		}
		k := len(b) / int(t.Size())
		s := fmt.Sprint(decode(b, t, k))
		if n > k {
			s = fmt.Sprintf("%s ... (%d elements, first %d shown)", s, n, k)
		}
		return s, nil
	}
	return "", fmt.Errorf("%s is a %s: -type reads values and arrays only: %w", o.Name, o.Kind, errType)
}

// decode returns a []t of k elements holding the bytes b (k*t.Size()).
func decode(b []byte, t reflect.Type, k int) reflect.Value {
	s := reflect.MakeSlice(reflect.SliceOf(t), k, k)
	if k > 0 {
		copy(unsafe.Slice((*byte)(s.UnsafePointer()), k*int(t.Size())), b)
	}
	return s
}

// typeErr describes why -type typ could not read o.
func typeErr(o shm.Object, typ string, err error) string {
	if errors.Is(err, shm.ErrTypeMismatch) {
		return fmt.Sprintf("%s is not a Value or Array of %s (%s)", name(o.Name), name(typ), text(err.Error()))
	}
	return text(err.Error())
}
