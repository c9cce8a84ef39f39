//go:build linux

package value_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

func init() { proctest.Register("getlock", roleGetLock) }

// roleGetLock: SEG N — the tutorial idiom, Python's
//
//	with v.get_lock(): v.value += 1
//	with arr.get_lock(): arr[0] += 1
//
// N times each, element access and Update taken inside the lock.
func roleGetLock(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	v, err := value.Open[int64](seg, "v", nil)
	if err != nil {
		return err
	}
	a, err := array.Open[int64](seg, "a", nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for range n {
		if err := v.Lock().Acquire(ctx); err != nil {
			return err
		}
		v.Store(v.Load() + 1)
		if _, err := v.Update(func(x *int64) {}); err != nil { // takes the lock again
			return err
		}
		v.Lock().Release()
		if err := a.Lock().Acquire(ctx); err != nil {
			return err
		}
		a.Set(0, a.At(0)+1) // At and Set take the lock the caller holds
		a.Lock().Release()
	}
	fmt.Println("done")
	return nil
}

// The get_lock idiom works with the default lock (an RLock, as Python's),
// on Value and Array alike, across processes, and the counts are exact.
func TestGetLockIdiomAcrossProcesses(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	seg, err := shm.Create(proctest.TempName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	v, err := value.Create[int64](seg, "v", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := array.Create[int64](seg, "a", 4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c1 := proctest.Start(t, "getlock", seg.Path(), strconv.Itoa(n/2))
	c2 := proctest.Start(t, "getlock", seg.Path(), strconv.Itoa(n/2))
	c1.WaitOK()
	c2.WaitOK()
	if v.Load() != int64(n) || a.At(0) != int64(n) {
		t.Fatalf("value %d, array %d; want %d each", v.Load(), a.At(0), n)
	}
	// The lock offers the three blocking forms without a type assertion.
	if ok, err := v.Lock().TryAcquire(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := a.Lock().AcquireTimeout(0); !ok || err != nil {
		t.Fatal("a Value's and an Array's own locks are separate:", ok, err)
	}
	v.Lock().Release()
	a.Lock().Release()
}
