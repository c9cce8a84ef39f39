//go:build linux

package shm_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/mpipc/mpipc/shm"
)

// Two handles on one segment stand for two processes: one places a named
// object, the other finds it by name and kind.
func Example() {
	name := fmt.Sprintf("mpipc-example-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{Size: 128 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name, nil)
	defer seg.Close()

	spec := shm.Spec{Name: "greeting", Kind: shm.KindBytes, KindVersion: 1, Size: 32}
	_, err = seg.Alloc(spec, func(mem []byte) error {
		copy(mem, "hello from the creator")
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	other, err := shm.Open(name, nil) // in another process, typically
	if err != nil {
		fmt.Println(err)
		return
	}
	defer other.Close()
	mem, err := other.Lookup(spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", mem[:22])

	_, err = other.Lookup(shm.Spec{Name: "greeting", Kind: shm.KindLock, KindVersion: 1})
	fmt.Println(errors.Is(err, shm.ErrKindMismatch))
	_, err = other.Alloc(spec, nil)
	fmt.Println(errors.Is(err, shm.ErrExist))
	// Output:
	// hello from the creator
	// true
	// true
}

// Inspect reads a segment's header and directory without mapping it, as
// `mpipc stat` does.
func ExampleInspect() {
	name := fmt.Sprintf("mpipc-example-inspect-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{Size: 64 << 10, MaxObjects: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name, nil)
	defer seg.Close()
	seg.Alloc(shm.Spec{Name: "jobs", Kind: shm.KindQueue, KindVersion: 1, Size: 4096}, nil)

	path, _ := shm.Resolve(name, nil)
	info, err := shm.Inspect(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Size, info.MaxObjects, info.NumObjects)
	for _, o := range info.Objects {
		fmt.Println(o.Name, o.Kind, o.Size, o.Ready)
	}
	// Output:
	// 65536 8 1
	// jobs queue 4096 true
}

// An anonymous segment has no name: a child process inherits its file
// through exec.Cmd.ExtraFiles and attaches with OpenFile.
func ExampleCreateAnonymous() {
	seg, err := shm.CreateAnonymous(1 << 20)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Close()
	// cmd.ExtraFiles = []*os.File{seg.File()}; in the child:
	// seg, err := shm.OpenFile(os.NewFile(3, "segment"))
	child, err := shm.OpenFile(seg.File())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer child.Close()
	fmt.Println(child.Size())
	// Output:
	// 1048576
}

// Destroy frees an object's space for the next ones, once nobody holds it:
// here the raw bytes from Alloc, given back with Release (a package's
// handle gives its hold back when it is collected).
func ExampleSegment_Destroy() {
	name := fmt.Sprintf("mpipc-example-destroy-%d", os.Getpid())
	seg, err := shm.Create(name, &shm.Options{Size: 128 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove(name, nil)
	defer seg.Close()

	spec := shm.Spec{Name: "session-42", Kind: shm.KindBytes, KindVersion: 1, Size: 4096}
	mem, err := seg.Alloc(spec, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = seg.Destroy("session-42")
	fmt.Println(errors.Is(err, shm.ErrInUse)) // this process still holds it
	seg.Release(mem)
	fmt.Println(seg.Destroy("session-42"))
	_, err = seg.Lookup(spec)
	fmt.Println(errors.Is(err, shm.ErrNotExist))
	_, err = seg.Alloc(spec, nil) // the name and the space are free again
	fmt.Println(err)
	// Output:
	// true
	// <nil>
	// true
	// <nil>
}
