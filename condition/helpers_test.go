//go:build linux

package condition_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
)

// Layout of the shared test file.
const (
	memSize  = 64 << 10
	offCond  = 0     // the Condition
	offCond2 = 16384 // a second Condition (producer/consumer)
	offLock  = 32768 // an external Lock or RLock
	offWords = 40960 // test words
)

// checkEvery is the CheckInterval of the tests' Conditions and locks: dead
// waiters and owners are found within about this long.
const checkEvery = 20 * time.Millisecond

var testOpts = &condition.Options{CheckInterval: checkEvery}

// sharedMem maps a fresh /dev/shm file of memSize bytes; see proctest.SharedFile.
func sharedMem(tb testing.TB) ([]byte, string) {
	tb.Helper()
	path, mem := proctest.SharedFile(tb, memSize)
	return mem, path
}

// mapFile maps the file at path (child side); see proctest.MapFile.
func mapFile(path string) ([]byte, error) { return proctest.MapFile(path) }

func word(mem []byte, i int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[offWords+8*i])) }

// setup is a test's shared file with one or two Conditions bound to a lock
// of the given kind: "own" (the Condition's own RLock), "lock" or "rlock".
type setup struct {
	mem    []byte
	path   string
	kind   string
	c, c2  *condition.Condition
	lockOf condition.Locker
}

func makeLock(mem []byte, kind string, init bool, reg *shm.Registry) (condition.Locker, error) {
	m := mem[offLock : offLock+64]
	o := &lock.Options{CheckInterval: checkEvery, Registry: reg}
	ro := &rlock.Options{CheckInterval: checkEvery, Registry: reg}
	switch kind {
	case "own":
		return nil, nil
	case "lock":
		if init {
			return lock.Init(m, o)
		}
		return lock.Attach(m, o)
	case "rlock":
		if init {
			return rlock.Init(m, ro)
		}
		return rlock.Attach(m, ro)
	}
	return nil, fmt.Errorf("unknown lock kind %q", kind)
}

// newSetup initializes the shared file. slots 0 means the default.
func newSetup(tb testing.TB, kind string, slots int) *setup {
	tb.Helper()
	mem, path := sharedMem(tb)
	s := &setup{mem: mem, path: path, kind: kind}
	reg := regtest.Registry(tb, path)
	lk, err := makeLock(mem, kind, true, reg)
	if err != nil {
		tb.Fatal(err)
	}
	opts := &condition.Options{Slots: slots, CheckInterval: checkEvery, Registry: reg}
	if s.c, err = condition.Init(mem[offCond:offCond2], lk, opts); err != nil {
		tb.Fatal(err)
	}
	if kind != "own" {
		if s.c2, err = condition.Init(mem[offCond2:offLock], lk, opts); err != nil {
			tb.Fatal(err)
		}
	}
	s.lockOf = s.c.Lock()
	return s
}

// attachSetup is newSetup's counterpart in a child.
func attachSetup(path, kind string) (*setup, error) {
	mem, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	s := &setup{mem: mem, path: path, kind: kind}
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, err
	}
	lk, err := makeLock(mem, kind, false, reg)
	if err != nil {
		return nil, err
	}
	opts := *testOpts
	opts.Registry = reg
	if s.c, err = condition.Attach(mem[offCond:offCond2], lk, &opts); err != nil {
		return nil, err
	}
	if kind != "own" {
		if s.c2, err = condition.Attach(mem[offCond2:offLock], lk, &opts); err != nil {
			return nil, err
		}
	}
	s.lockOf = s.c.Lock()
	return s, nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func errName(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, condition.ErrOwnerDead):
		return "ownerdead"
	case errors.Is(err, condition.ErrNotRecoverable):
		return "notrecoverable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return err.Error()
}

func TestMain(m *testing.M) {
	proctest.Register("stats-wait", childStatsWait)
	// waiter PATH KIND TIMEOUT_MS: acquire, then Wait (TIMEOUT_MS 0: with a
	// 30 s context) or WaitTimeout; print "done <notified> <err> <level>";
	// increment word 0; release.
	proctest.Register("waiter", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		ms, _ := strconv.Atoi(args[2])
		if err := s.c.Acquire(context.Background()); err != nil {
			return err
		}
		var ok bool
		if ms == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = s.c.Wait(ctx)
			cancel()
			ok = err == nil
		} else {
			ok, err = s.c.WaitTimeout(time.Duration(ms) * time.Millisecond)
		}
		lv := s.c.State().Level
		fmt.Println("done", ok, errName(err), lv)
		atomic.AddUint64(word(s.mem, 0), 1)
		return s.c.Release()
	})
	// notifier PATH KIND: TryAcquire the lock (the parent waits at level 3,
	// so this proves Wait released it completely), set word 1, Notify(1),
	// release; print the TryAcquire result.
	proctest.Register("notifier", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		ok, err := s.c.TryAcquire()
		fmt.Println("try", ok, errName(err))
		if !ok {
			return nil
		}
		atomic.StoreUint64(word(s.mem, 1), 1)
		if err := s.c.Notify(1); err != nil {
			return err
		}
		return s.c.Release()
	})
	// prodcons PATH KIND ROLE ID N: a producer (ROLE p) puts N items
	// ID*N+1 .. ID*N+N into a bounded buffer; a consumer (ROLE c) takes
	// items until it has seen the end marker and prints its count and sum.
	proctest.Register("prodcons", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		id, _ := strconv.Atoi(args[3])
		n, _ := strconv.Atoi(args[4])
		if args[2] == "p" {
			return produce(s, id, n)
		}
		cnt, sum, err := consume(s)
		fmt.Println(cnt, sum)
		return err
	})
	// pingpong PATH KIND N: side B of the W4 round trip.
	proctest.Register("pingpong", func(args []string) error {
		s, err := attachSetup(args[0], args[1])
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(args[2])
		return pingB(s, n)
	})
	// segwaiter SEGMENT NAME: open the Condition NAME (and its lock, by the
	// name it recorded) in the segment, Wait up to 30 s, print the result.
	proctest.Register("segwaiter", func(args []string) error {
		seg, err := shm.Open(args[0], nil)
		if err != nil {
			return err
		}
		defer seg.Close()
		c, err := condition.Open(seg, args[1], testOpts)
		if err != nil {
			return err
		}
		if err := c.Acquire(context.Background()); err != nil {
			return err
		}
		ok, err := c.WaitTimeout(30 * time.Second)
		fmt.Println("done", ok, errName(err))
		return c.Release()
	})
	proctest.Main(m)
}

// Bounded buffer for the producer/consumer test, in the test words:
// word 8 head (next get), word 9 tail (next put), words 16.. the ring.
const ringCap = 8

func (s *setup) ring(i uint64) *uint64 { return word(s.mem, 16+int(i%ringCap)) }

// endMarker tells a consumer to stop.
const endMarker = ^uint64(0)

// put adds v to the ring, waiting on c2 (not full) and notifying c (not
// empty). The lock is held.
func (s *setup) put(ctx context.Context, v uint64) error {
	head, tail := word(s.mem, 8), word(s.mem, 9)
	if _, err := s.c2.WaitFor(ctx, func() bool { return *tail-*head < ringCap }); err != nil {
		return err
	}
	*s.ring(*tail) = v
	*tail++
	return s.c.Notify(1)
}

func (s *setup) get(ctx context.Context) (uint64, error) {
	head, tail := word(s.mem, 8), word(s.mem, 9)
	if _, err := s.c.WaitFor(ctx, func() bool { return *tail != *head }); err != nil {
		return 0, err
	}
	v := *s.ring(*head)
	*head++
	return v, s.c2.Notify(1)
}

func produce(s *setup, id, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 1; i <= n+1; i++ {
		v := uint64(id*n + i)
		if i == n+1 {
			v = endMarker
		}
		if err := s.c.Acquire(context.Background()); err != nil {
			return err
		}
		if err := s.put(ctx, v); err != nil {
			return fmt.Errorf("put %d: %w", i, err)
		}
		if err := s.c.Release(); err != nil {
			return err
		}
	}
	return nil
}

func consume(s *setup) (cnt, sum uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if err := s.c.Acquire(context.Background()); err != nil {
			return cnt, sum, err
		}
		v, err := s.get(ctx)
		if err != nil {
			return cnt, sum, fmt.Errorf("get after %d items: %w", cnt, err)
		}
		if err := s.c.Release(); err != nil {
			return cnt, sum, err
		}
		if v == endMarker {
			return cnt, sum, nil
		}
		cnt++
		sum += v
	}
}

// The W4 round trip on one Condition and a turn counter (word 4): A,
// holding the lock, sets turn 2i+1, notifies, waits until turn is 2i+2;
// B waits until turn is 2i+1, sets 2i+2, notifies.
func pingA(s *setup, n int) error { return pingATimed(s, n, nil) }

// pingATimed is pingA recording each round trip's duration in rt, if
// rt is not nil (len(rt) >= n).
func pingATimed(s *setup, n int, rt []time.Duration) error {
	turn := word(s.mem, 4)
	if err := s.c.Acquire(context.Background()); err != nil {
		return err
	}
	last := time.Now()
	for i := uint64(0); i < uint64(n); i++ {
		if rt != nil {
			now := time.Now()
			rt[i] = now.Sub(last)
			last = now
		}
		atomic.StoreUint64(turn, 2*i+1)
		if err := s.c.Notify(1); err != nil {
			return err
		}
		for atomic.LoadUint64(turn) != 2*i+2 {
			if err := s.c.Wait(context.Background()); err != nil {
				return err
			}
		}
	}
	return s.c.Release()
}

func pingB(s *setup, n int) error {
	turn := word(s.mem, 4)
	if err := s.c.Acquire(context.Background()); err != nil {
		return err
	}
	for i := uint64(0); i < uint64(n); i++ {
		for atomic.LoadUint64(turn) != 2*i+1 {
			if err := s.c.Wait(context.Background()); err != nil {
				return err
			}
		}
		atomic.StoreUint64(turn, 2*i+2)
		if err := s.c.Notify(1); err != nil {
			return err
		}
	}
	return s.c.Release()
}
