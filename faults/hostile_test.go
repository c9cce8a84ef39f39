//go:build linux

package faults_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The hostile-peer test: for each object kind, two user processes run the
// object's operations in a loop while a third process scribbles random
// values into every 32-bit word of the object's memory (found through the
// segment directory, mapped from the file on its own). The users must not
// crash (a panic or a fault fails the child), must not touch memory outside
// the mapping (that would fault), and must not spin: every operation is
// bounded by a watchdog that kills the user with its goroutine dump. Each
// error must be shm.ErrCorrupt or one the kind documents; the counts are
// logged.

var hostileFor = flag.Duration("faults.hostile", 0, "how long the scribbler runs per object kind (0: 1s)")

const (
	opWatchdog = 5 * time.Second
	guardSize  = 4096
	guardByte  = 0xa5
)

type hostileKind struct {
	name   string
	create func(seg *shm.Segment) error
	// user opens the object and returns one operation to run repeatedly.
	user func(seg *shm.Segment, end int) (op func(rng *rand.Rand) error, err error)
	// allowed are the errors the kind may return besides shm.ErrCorrupt.
	allowed []error
	// header makes the scribbler write the segment's header and directory
	// instead of the objects.
	header bool
	// watchdog overrides opWatchdog (an operation documented to wait
	// longer, bounded).
	watchdog time.Duration
}

var hostileKinds = []*hostileKind{
	{
		name:   "lock",
		create: func(seg *shm.Segment) error { _, err := lock.Create(seg, "obj", nil); return err },
		user: func(seg *shm.Segment, _ int) (func(*rand.Rand) error, error) {
			l, err := lock.Open(seg, "obj", &lock.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				_ = l.State()
				ok, err := l.AcquireTimeout(time.Duration(rng.IntN(3)) * time.Millisecond)
				if ok {
					if errors.Is(err, lock.ErrOwnerDead) {
						l.Consistent()
					}
					return l.Release()
				}
				return err
			}, err
		},
		allowed: []error{lock.ErrOwnerDead, lock.ErrNotRecoverable, lock.ErrNotLocked, lock.ErrNotInconsistent},
	},
	{
		name:   "rlock",
		create: func(seg *shm.Segment) error { _, err := rlock.Create(seg, "obj", nil); return err },
		user: func(seg *shm.Segment, _ int) (func(*rand.Rand) error, error) {
			r, err := rlock.Open(seg, "obj", &rlock.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				_ = r.State()
				ok, err := r.AcquireTimeout(time.Duration(rng.IntN(3)) * time.Millisecond)
				if ok {
					if errors.Is(err, rlock.ErrOwnerDead) {
						r.Consistent()
					}
					r.TryAcquire()
					_, err := r.ReleaseAll()
					return err
				}
				return err
			}, err
		},
		allowed: []error{rlock.ErrOwnerDead, rlock.ErrNotRecoverable, rlock.ErrNotLocked, rlock.ErrNotOwner, rlock.ErrLevel, rlock.ErrNotInconsistent},
	},
	{
		name: "semaphore",
		create: func(seg *shm.Segment) error {
			if _, err := semaphore.Create(seg, "obj", 2, nil); err != nil {
				return err
			}
			_, err := semaphore.CreateBounded(seg, "obj2", 2, nil)
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			if end == 1 {
				s, err := semaphore.OpenBounded(seg, "obj2", nil)
				return func(rng *rand.Rand) error {
					_ = s.State()
					if ok, _ := s.AcquireTimeout(time.Duration(rng.IntN(3)) * time.Millisecond); ok {
						return s.Release(1)
					}
					return s.Release(1)
				}, err
			}
			s, err := semaphore.Open(seg, "obj", nil)
			return func(rng *rand.Rand) error {
				_ = s.State()
				if ok, _ := s.AcquireTimeout(time.Duration(rng.IntN(3)) * time.Millisecond); ok {
					return s.Release(1)
				}
				return nil
			}, err
		},
		allowed: []error{semaphore.ErrOverflow, semaphore.ErrReleasedTooMany},
	},
	{
		name:   "event",
		create: func(seg *shm.Segment) error { _, err := event.Create(seg, "obj", nil); return err },
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			e, err := event.Open(seg, "obj", nil)
			return func(rng *rand.Rand) error {
				switch rng.IntN(3) {
				case 0:
					e.Set()
				case 1:
					e.Clear()
				default:
					e.WaitTimeout(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
				_ = e.State()
				return nil
			}, err
		},
	},
	{
		name: "barrier",
		create: func(seg *shm.Segment) error {
			b, err := barrier.Create(seg, "obj", 2, &barrier.Options{Observe: true})
			if err == nil {
				b.Close()
			}
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			b, err := barrier.Open(seg, "obj", &barrier.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				_ = b.State()
				_ = b.NWaiting()
				if b.Broken() || rng.IntN(20) == 0 {
					b.Reset()
				}
				idx, err := b.WaitTimeout(time.Duration(rng.IntN(5)) * time.Millisecond)
				if err == nil && (idx < 0 || idx >= b.Parties()) {
					return fmt.Errorf("index %d of a %d-party barrier with a nil error", idx, b.Parties())
				}
				return err
			}, err
		},
		allowed: []error{barrier.ErrBrokenBarrier, barrier.ErrTimedOut},
	},
	{
		name: "condition",
		create: func(seg *shm.Segment) error {
			_, err := condition.Create(seg, "obj", "", &condition.Options{Slots: 4})
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			c, err := condition.Open(seg, "obj", &condition.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				_ = c.State()
				ok, err := c.AcquireTimeout(time.Duration(rng.IntN(3)) * time.Millisecond)
				if !ok {
					return err
				}
				if errors.Is(err, condition.ErrOwnerDead) {
					c.Lock().(*rlock.RLock).Consistent()
				}
				var errs []error
				if rng.IntN(2) == 0 {
					errs = append(errs, c.Notify(1))
				} else {
					_, err := c.WaitTimeout(time.Duration(rng.IntN(3)) * time.Millisecond)
					errs = append(errs, err)
				}
				errs = append(errs, c.Release())
				return errors.Join(errs...)
			}, err
		},
		allowed: []error{condition.ErrOwnerDead, condition.ErrNotRecoverable, condition.ErrNotOwner, condition.ErrTooManyWaiters,
			rlock.ErrNotLocked, rlock.ErrNotOwner, rlock.ErrLevel, rlock.ErrNotInconsistent},
	},
	{
		name: "value",
		create: func(seg *shm.Segment) error {
			if _, err := value.Create[int64](seg, "obj", 0, nil); err != nil {
				return err
			}
			_, err := value.Create(seg, "obj2", quad{}, nil)
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			n, err := value.Open[int64](seg, "obj", &value.Options{CheckInterval: 5 * time.Millisecond})
			if err != nil {
				return nil, err
			}
			q, err := value.Open[quad](seg, "obj2", &value.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				n.Add(1)
				n.CompareAndSwap(n.Load(), 3)
				_ = q.Load()
				_ = n.State()
				_ = q.State()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
				defer cancel()
				if rng.IntN(2) == 0 {
					q.Store(quad{1, 1, 1, 1})
				}
				_, err := q.UpdateContext(ctx, func(x *quad) { x.A++ })
				if err == nil {
					_, err = n.UpdateContext(ctx, func(x *int64) { *x++ })
				}
				return err
			}, err
		},
		// ErrOwnerDead: a peer wrote a dead holder into the lock word, or
		// set the inconsistent flag (see package value).
		allowed: []error{value.ErrOwnerDead, lock.ErrNotRecoverable, lock.ErrNotLocked, lock.ErrNotInconsistent, rlock.ErrNotOwner, rlock.ErrLevel, context.DeadlineExceeded},
	},
	{
		name: "array",
		create: func(seg *shm.Segment) error {
			_, err := array.Create[int64](seg, "obj", 8, nil, nil)
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			a, err := array.Open[int64](seg, "obj", &array.Options{CheckInterval: 5 * time.Millisecond})
			return func(rng *rand.Rand) error {
				_ = a.State()
				a.Set(rng.IntN(8), a.At(rng.IntN(8))+1)
				buf := make([]int64, 8)
				a.CopyOut(buf, 0)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
				defer cancel()
				return a.UpdateContext(ctx, 0, 8, func(s []int64) { s[0]++ })
			}, err
		},
		// ErrNotInconsistent: a peer rewrote the lock word between the
		// takeover of a dead owner's lock and Consistent. ErrNotOwner and
		// ErrLevel: a peer rewrote the own RLock's owner or level words.
		// ErrOwnerDead: a peer wrote a dead holder into the lock word, or
		// set the inconsistent flag (see package array).
		allowed: []error{array.ErrOwnerDead, lock.ErrNotRecoverable, lock.ErrNotLocked, lock.ErrNotInconsistent, rlock.ErrNotOwner, rlock.ErrLevel, context.DeadlineExceeded},
	},
	{
		name: "queue",
		create: func(seg *shm.Segment) error {
			if _, err := ringbuf.Create(seg, "obj", 8, 32, nil); err != nil {
				return err
			}
			_, err := ringbuf.CreateJoinable(seg, "obj2", 8, 32, nil)
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			o := &ringbuf.Options{CheckInterval: 5 * time.Millisecond}
			q, err := ringbuf.Open(seg, "obj", o)
			if err != nil {
				return nil, err
			}
			j, err := ringbuf.OpenJoinable(seg, "obj2", o)
			buf := make([]byte, 64)
			return func(rng *rand.Rand) error {
				_ = q.State()
				_ = q.Len()
				d := time.Duration(rng.IntN(3)) * time.Millisecond
				var errs []error
				switch rng.IntN(6) {
				case 0:
					errs = append(errs, q.PutTimeout([]byte("hello"), d))
				case 1:
					_, err := q.GetIntoTimeout(buf, d)
					errs = append(errs, err)
				case 2:
					r, err := q.ReserveTimeout(5, d)
					if err == nil {
						copy(r.Bytes(), "world")
						err = r.Commit()
					}
					errs = append(errs, err)
				case 3:
					b, err := q.BorrowTimeout(d)
					if err == nil {
						_ = b.Bytes()
						err = b.Release()
					}
					errs = append(errs, err)
				case 4:
					errs = append(errs, j.PutTimeout([]byte("task"), d))
					_, err := j.GetIntoTimeout(buf, d)
					errs = append(errs, err)
					if err == nil {
						errs = append(errs, j.TaskDone())
					}
				default:
					_, err := j.JoinTimeout(d)
					errs = append(errs, err)
					_ = j.State()
				}
				return errors.Join(errs...)
			}, err
		},
		allowed: []error{ringbuf.ErrFull, ringbuf.ErrEmpty, ringbuf.ErrClosed, ringbuf.ErrShutdown, ringbuf.ErrShortBuffer, ringbuf.ErrTaskDone, ringbuf.ErrTooLarge},
	},
	{
		name: "pipe",
		create: func(seg *shm.Segment) error {
			c, err := ringbuf.CreatePipe(seg, "obj", &ringbuf.PipeOptions{Capacity: 1024})
			if err == nil {
				err = c.Detach()
			}
			return err
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			c, err := ringbuf.OpenPipe(seg, "obj", end, &ringbuf.PipeOptions{CheckInterval: 5 * time.Millisecond})
			buf := make([]byte, 2048)
			return func(rng *rand.Rand) error {
				_ = c.State()
				d := time.Duration(rng.IntN(3)) * time.Millisecond
				if rng.IntN(2) == 0 {
					return c.SendTimeout(buf[:rng.IntN(64)], d)
				}
				if _, err := c.Poll(0); err != nil {
					return err
				}
				_, err := c.RecvTimeout(buf, d)
				return err
			}, err
		},
		allowed: []error{ringbuf.ErrFull, ringbuf.ErrEmpty, ringbuf.ErrClosed, ringbuf.ErrShutdown, ringbuf.ErrPeerGone, ringbuf.ErrShortBuffer, ringbuf.ErrTooLarge, io.EOF},
	},
	{
		// The segment itself: header, segment lock, directory and attach
		// table scribbled while processes look objects up, allocate,
		// destroy, list, inspect and open the segment anew.
		name:   "segment",
		header: true,
		create: func(seg *shm.Segment) error {
			for i := range 8 {
				if _, err := lock.Create(seg, fmt.Sprint("l", i), nil); err != nil {
					return err
				}
			}
			return nil
		},
		user: func(seg *shm.Segment, end int) (func(*rand.Rand) error, error) {
			path := seg.Path()
			seq := 0
			return func(rng *rand.Rand) error {
				var errs []error
				switch rng.IntN(5) {
				case 0:
					_, err := seg.Lookup(shm.Spec{Name: fmt.Sprint("l", rng.IntN(8)), Kind: shm.KindLock, KindVersion: lock.Version})
					errs = append(errs, err)
				case 1:
					_, err := seg.Objects()
					errs = append(errs, err)
					_ = seg.Info()
				case 2:
					seq++
					name := fmt.Sprintf("n%d-%d-%d", os.Getpid(), end, seq)
					mem, err := seg.Alloc(shm.Spec{Name: name, Kind: shm.KindBytes, KindVersion: 1, Size: 64 << rng.IntN(4)},
						func([]byte) error { return nil })
					errs = append(errs, err)
					if err == nil && rng.IntN(2) == 0 {
						seg.Release(mem)
						errs = append(errs, seg.Destroy(name))
					}
				case 3:
					_, err := shm.Inspect(path)
					errs = append(errs, err)
				default:
					s2, err := shm.Open(path, nil)
					errs = append(errs, err)
					if err == nil {
						_, err := lock.Open(s2, "l0", nil)
						errs = append(errs, err, s2.Close())
					}
				}
				return errors.Join(errs...)
			}, nil
		},
		allowed: []error{shm.ErrNotExist, shm.ErrExist, shm.ErrKindMismatch, shm.ErrTypeMismatch, shm.ErrFull, shm.ErrNotReady,
			shm.ErrChecksum, shm.ErrNotSegment, shm.ErrVersion, shm.ErrTruncated, shm.ErrInvalidSize, futex.ErrTimeout,
			lock.ErrNotRecoverable, lock.ErrOwnerDead, lock.ErrNotLocked, shm.ErrInUse},
		watchdog: 15 * time.Second, // Alloc waits up to 10 s for the segment lock
	},
}

func hostileKindByName(name string) *hostileKind {
	for _, k := range hostileKinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

func init() {
	addRole("hostile-user", hostileUser)
	addRole("hostile-scribbler", hostileScribbler)
}

// hostileUser: args kind, segment, end. It runs the kind's operation
// until stdin... until the segment's "stop" word is set, printing counts.
func hostileUser(args []string) error {
	k := hostileKindByName(args[0])
	end, _ := strconv.Atoi(args[2])
	seg, err := shm.Open(args[1], nil)
	if err != nil {
		return err
	}
	stop, err := seg.Lookup(shm.Spec{Name: "stop", Kind: shm.KindBytes, KindVersion: 1})
	if err != nil {
		return err
	}
	op, err := k.user(seg, end)
	if err != nil {
		return err
	}
	var started atomic.Int64 // start of the running operation, unix ns; 0 between
	var current atomic.Value
	current.Store("")
	wd := opWatchdog
	if k.watchdog > 0 {
		wd = k.watchdog
	}
	go func() {
		for {
			time.Sleep(100 * time.Millisecond)
			if s := started.Load(); s != 0 && time.Since(time.Unix(0, s)) > wd {
				debug.SetTraceback("all")
				panic(fmt.Sprintf("faults: HANG: %s operation running for over %v", k.name, wd))
			}
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	counts := map[string]int{}
	proctest.SignalReady()
	stopWord := (*uint32)(unsafe.Pointer(&stop[0]))
	for ops := 0; atomic.LoadUint32(stopWord) == 0; ops++ {
		started.Store(time.Now().UnixNano())
		err := runOp(op, rng)
		started.Store(0)
		counts[classify(k, err)]++
	}
	keys := make([]string, 0, len(counts))
	for c := range counts {
		keys = append(keys, c)
	}
	sort.Strings(keys)
	for _, c := range keys {
		fmt.Printf("count %s %d\n", c, counts[c])
	}
	return nil
}

// runOp runs op, turning a documented panic into an error for counting;
// any other panic propagates and crashes the child.
func runOp(op func(*rand.Rand) error, rng *rand.Rand) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if documentedPanic(r) {
				err = &panicErr{fmt.Sprint(r)}
				return
			}
			panic(r)
		}
	}()
	return op(rng)
}

type panicErr struct{ msg string }

func (p *panicErr) Error() string { return "panic: " + p.msg }

func classify(k *hostileKind, err error) string {
	if err == nil {
		return "ok"
	}
	var pe *panicErr
	if errors.As(err, &pe) {
		return "PANIC(" + strings.ReplaceAll(pe.msg, " ", "_") + ")"
	}
	if errors.Is(err, shm.ErrCorrupt) {
		return "ErrCorrupt"
	}
	for _, a := range k.allowed {
		if errors.Is(err, a) {
			return "documented"
		}
	}
	return "UNEXPECTED(" + strings.ReplaceAll(err.Error(), " ", "_") + ")"
}

// hostileScribbler: args segment path, kind. Maps the file itself and
// writes random values into every 32-bit word of every object but "stop",
// pass after pass, until stop is set.
func hostileScribbler(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	objs, err := seg.Objects()
	if err != nil {
		return err
	}
	path := seg.Path()
	hdr := seg.Info().HeaderSize
	seg.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, _ := f.Stat()
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		return err
	}
	var stop *uint32
	type region struct{ off, n int }
	var regions []region
	for _, o := range objs {
		if o.Name == "stop" {
			stop = (*uint32)(unsafe.Pointer(&mem[o.Offset]))
			continue
		}
		if strings.HasPrefix(o.Name, "guard") {
			continue
		}
		regions = append(regions, region{int(o.Offset), int(o.Size)})
	}
	if len(args) > 1 && hostileKindByName(args[1]).header {
		regions = []region{{0, int(hdr)}}
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 2))
	self := uint32(os.Getpid())
	proctest.SignalReady()
	var writes int
	for pass := 0; atomic.LoadUint32(stop) == 0; pass++ {
		for _, r := range regions {
			for off := r.off; off+4 <= r.off+r.n; off += 4 {
				if rng.IntN(4) != 0 && pass%2 == 1 {
					continue // odd passes hit a quarter of the words: the object gets used in between
				}
				var v uint32
				switch rng.IntN(6) {
				case 0:
					v = 0
				case 1:
					v = ^uint32(0)
				case 2:
					v = uint32(rng.IntN(16))
				case 3:
					v = self // a live process's pid
				case 4:
					v = 1 << rng.IntN(32)
				default:
					v = rng.Uint32()
				}
				atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off])), v)
				writes++
			}
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
	}
	fmt.Printf("writes %d\n", writes)
	return nil
}

func TestHostilePeer(t *testing.T) {
	d := *hostileFor
	if d == 0 {
		d = time.Second
	}
	for _, k := range hostileKinds {
		t.Run(k.name, func(t *testing.T) {
			name := proctest.TempName(t)
			seg, err := shm.Create(name, &shm.Options{Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer seg.Close()
			stop, err := seg.Alloc(shm.Spec{Name: "stop", Kind: shm.KindBytes, KindVersion: 1, Size: 64}, func([]byte) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			// Guards before and after the object(s): a write outside
			// the object by a user (an index taken from garbage) would
			// change them.
			guard := func(name string) []byte {
				g, err := seg.Alloc(shm.Spec{Name: name, Kind: shm.KindBytes, KindVersion: 1, Size: guardSize}, func(m []byte) error {
					for i := range m {
						m[i] = guardByte
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			g1 := guard("guard1")
			if err := k.create(seg); err != nil {
				t.Fatal(err)
			}
			g2 := guard("guard2")
			users := []*proctest.Child{
				proctest.Start(t, "hostile-user", k.name, name, "0"),
				proctest.Start(t, "hostile-user", k.name, name, "1"),
			}
			for _, u := range users {
				u.Expect(proctest.Ready, 30*time.Second)
			}
			sc := proctest.Start(t, "hostile-scribbler", name, k.name)
			sc.Expect(proctest.Ready, 30*time.Second)
			time.Sleep(d)
			atomic.StoreUint32((*uint32)(unsafe.Pointer(&stop[0])), 1)
			total := map[string]int{}
			var mu sync.Mutex
			for _, c := range append(users, sc) {
				r := c.Wait(opWatchdog + 20*time.Second)
				if r.TimedOut || r.Code != 0 {
					t.Errorf("%s: child failed: code %d signal %v timed out %v\n%s", k.name, r.Code, r.Signal, r.TimedOut, tail(r.Stderr, 8000))
					continue
				}
				for _, l := range strings.Split(r.Stdout, "\n") {
					var what string
					var n int
					if _, err := fmt.Sscanf(l, "count %s %d", &what, &n); err == nil {
						mu.Lock()
						total[what] += n
						mu.Unlock()
					} else if _, err := fmt.Sscanf(l, "writes %d", &n); err == nil {
						total["scribbled-words"] += n
					}
				}
			}
			if !k.header {
				for i, g := range [][]byte{g1, g2} {
					for j, c := range g {
						if c != guardByte {
							t.Errorf("%s: guard %d changed at byte %d: a write outside the object", k.name, i+1, j)
							break
						}
					}
				}
			}
			var bad []string
			for what, n := range total {
				if strings.HasPrefix(what, "UNEXPECTED") || strings.HasPrefix(what, "PANIC") ||
					(*known && strings.HasPrefix(what, "KNOWN-DEFECT")) {
					bad = append(bad, fmt.Sprintf("%s x%d", what, n))
				}
			}
			t.Logf("%s: %v", k.name, total)
			for what, n := range total {
				if strings.HasPrefix(what, "KNOWN-DEFECT") {
					t.Logf("%s: NOT A PASS for this outcome: %s x%d (known defect, reported; run -faults.known)", k.name, what, n)
				}
			}
			if total["scribbled-words"] == 0 {
				t.Errorf("%s: the scribbler wrote nothing", k.name)
			}
			if len(bad) > 0 {
				sort.Strings(bad)
				t.Errorf("%s: outcomes other than success, ErrCorrupt or documented errors: %s", k.name, strings.Join(bad, "; "))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
