//go:build linux

package typeinfo_test

import (
	"errors"
	"fmt"

	"github.com/mpipc/mpipc/internal/typeinfo"
)

func ExampleOf() {
	type sample struct {
		Time  int64
		Value [3]float32
	}
	info, err := typeinfo.Of[sample]()
	fmt.Println(info.Size, info.Align, info.Desc, err)

	_, err = typeinfo.Of[struct{ Name string }]()
	fmt.Println(errors.Is(err, typeinfo.ErrUnsupportedType))
	// Output:
	// 24 8 struct{0:int64 8:[3]float32} <nil>
	// true
}
