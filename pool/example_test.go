//go:build linux

package pool_test

import (
	"context"
	"fmt"

	"github.com/mpipc/mpipc/pool"
)

// cube is registered at package level: the workers, this test binary
// re-executed, register it too. (TestMain calls process.Main.)
var cube = pool.NewFunc("example.cube", func(x int64) (int64, error) { return x * x * x, nil })

func Example() {
	p, err := pool.New(context.Background(), 2, nil)
	if err != nil {
		panic(err)
	}
	defer p.Terminate()

	cubes, err := pool.Map(context.Background(), p, cube, []int64{1, 2, 3, 4}, nil)
	fmt.Println(cubes, err)

	fu, _ := pool.Submit(p, cube, 10)
	v, err := fu.Get(context.Background())
	fmt.Println(v, err)

	p.Close()
	fmt.Println(p.Wait())
	// Output:
	// [1 8 27 64] <nil>
	// 1000 <nil>
	// <nil>
}
