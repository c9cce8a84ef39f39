//go:build linux

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/shm"
)

// Two processes would each run this: the first creates the lock, the
// others open it by name.
func Example() {
	name := fmt.Sprintf("mpipc-example-lock-%d", os.Getpid())
	seg, err := shm.OpenOrCreate(name, nil)
	if err != nil {
		panic(err)
	}
	defer shm.Remove(name, nil)
	defer seg.Close()

	mu, err := lock.Create(seg, "mu", nil)
	if errors.Is(err, shm.ErrExist) {
		mu, err = lock.Open(seg, "mu", nil)
	}
	if err != nil {
		panic(err)
	}

	switch err := mu.Acquire(context.Background()); {
	case errors.Is(err, lock.ErrOwnerDead):
		// The previous holder died in its critical section:
		// repair what the lock guards, then:
		mu.Consistent()
	case err != nil:
		panic(err)
	}
	fmt.Println("held:", mu.Held())
	mu.Release()
	fmt.Println("held:", mu.Held())

	// Releasing an unheld lock is an error, as in Python.
	fmt.Println(mu.Release())
	// Output:
	// held: true
	// held: false
	// mpipc: release of unlocked lock
}
