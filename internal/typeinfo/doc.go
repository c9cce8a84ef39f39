// Package typeinfo checks that a Go type can live in shared memory and
// describes its layout with a fingerprint, so that an object created with
// one element type cannot be opened with another.
//
// A type is accepted when another process, written in Go or not, can read
// it from the bytes alone: the numeric kinds (all integer widths except
// uintptr, float32/64, complex64/128), bool, and arrays and structs of
// accepted types, recursively. Pointers, unsafe.Pointer, uintptr, slices,
// strings, maps, interfaces, channels and functions are refused with an
// error wrapping [ErrUnsupportedType] that names the offending field path.
// Types of size zero are refused too: nothing could be stored in them.
//
// # Fingerprint
//
// The fingerprint is the 64-bit FNV-1a hash of a canonical description of
// the layout, so two types with the same layout have the same fingerprint
// whatever their Go names, field names or package (a C program describing
// the same layout can compute it). The description is a byte string of
// little-endian uint64 words and one-byte tags:
//
//	type   := size align node
//	node   := scalar | array | struct
//	scalar := class size              class: 1 bool, 2 signed integer,
//	                                         3 unsigned integer, 4 float,
//	                                         5 complex
//	array  := 6 length node           (node of the element)
//	struct := 7 size nfields { offset node }*
//
// class, 6 and 7 are single bytes; every other item is a uint64. A
// fingerprint of 0 is replaced by 1, since 0 means "untyped" in a segment
// directory. Go's int and uint are described as the 64-bit integers they
// are on the supported platforms.
//
// # Caveats
//
//   - Only 64-bit little-endian platforms are supported; the description
//     does not include the byte order.
//   - Field names are not part of the fingerprint: two structs that differ
//     only in field names (or field order with identical kinds) match.
//   - The fingerprint is a hash: two different layouts collide with
//     probability about 2^-64.
package typeinfo
