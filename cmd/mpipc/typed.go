package main

import (
	"errors"
	"fmt"
	"strings"

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

// parseType turns a -type argument in Go syntax (bool, int8..int64,
// uint8..uint64, float32, float64) into the reader of a Value or Array of
// that element type.
//
// Arrays of them ([N]T) are refused: each Go type that stat can open an
// object with is compiled into mpipc (value and array are generic and check
// the element type's fingerprint), and every [N]T instantiation costs
// about a third of a second of compile time: [1..16] of eleven kinds would
// add over a minute to every build of this command. Reading them needs a
// type-erased read in packages value and array.
func parseType(s string) (contents, error) {
	elem := strings.TrimSpace(s)
	if strings.HasPrefix(elem, "[") {
		return nil, fmt.Errorf("%q: arrays as element types are not supported yet (only bool, int8..int64, uint8..uint64, float32, float64): %w", s, errType)
	}
	switch elem {
	case "bool":
		return read[bool], nil
	case "int8":
		return read[int8], nil
	case "int16":
		return read[int16], nil
	case "int32":
		return read[int32], nil
	case "int64":
		return read[int64], nil
	case "uint8":
		return read[uint8], nil
	case "uint16":
		return read[uint16], nil
	case "uint32":
		return read[uint32], nil
	case "uint64":
		return read[uint64], nil
	case "float32":
		return read[float32], nil
	case "float64":
		return read[float64], nil
	}
	return nil, fmt.Errorf("%q: want bool, int8..int64, uint8..uint64, float32 or float64: %w", s, errType)
}

// read opens o as a Value[T] or an Array[T] and formats its contents: a
// Value's Load (which never waits for a writer), an Array's first
// statShown elements read without its lock (a writer at that moment may
// tear the snapshot). Opening checks T against the object's recorded type
// (shm.ErrTypeMismatch).
func read[T any](seg *shm.Segment, o shm.Object) (string, error) {
	switch o.Kind {
	case shm.KindValue:
		v, err := value.OpenRaw[T](seg, o.Name, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprint(v.Load()), nil
	case shm.KindArray:
		a, err := array.OpenRaw[T](seg, o.Name)
		if err != nil {
			return "", err
		}
		n := min(a.Len(), statShown)
		s := fmt.Sprint(a.Slice(0, n))
		if more := a.Len() - n; more > 0 {
			s = fmt.Sprintf("%s ... (%d elements, first %d shown)", s, a.Len(), n)
		}
		return s, nil
	}
	return "", fmt.Errorf("%s is a %s: -type reads values and arrays only: %w", o.Name, o.Kind, errType)
}

// typeErr describes why -type typ could not read o.
func typeErr(o shm.Object, typ string, err error) string {
	if errors.Is(err, shm.ErrTypeMismatch) {
		return fmt.Sprintf("%s is not a Value or Array of %s (%s)", name(o.Name), name(typ), text(err.Error()))
	}
	return text(err.Error())
}
