//go:build linux

package faults_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
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
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/value"
)

// The peer fuzz targets (FuzzPeerLock, …): one object of a kind lives in
// a mapping fenced by inaccessible guard pages, so that any access outside
// it faults. A peer goroutine writes values the fuzzer chooses into the
// object's shared words, over and over, while a party calls the object's
// operations, each with a short timeout. The fuzzed input is the peer's
// program: a seed that picks the operations, then (word index, value)
// pairs. Each input asserts: no panic, no access outside the mapping (a
// fault crashes the worker, which the fuzzer records), no call that
// returns more than 100 ms after its own deadline, and no error other than
// shm.ErrCorrupt and those the kind documents (the hostile-peer test's
// lists).

// peerSlack is how late past its own deadline a call may return.
const peerSlack = 100 * time.Millisecond

// A probe tells the library's lateness from the machine's. On a loaded
// machine (two cores shared by many test runs, under a CPU quota) the
// whole process can go without a CPU for 100 ms and more, several times
// over, and a call that needs a few wake-ups to return after its deadline
// is then late by several such stalls. So lateness is measured in time the
// process demonstrably had a CPU: a probe goroutine wakes every
// probePeriod, and each wake-up after the running call's deadline adds
// the time since the previous one, but at most 2*probePeriod (a longer gap
// is a stall of the process, not time it could have used). A call fails
// if it is more than peerSlack late in wall time and the probe ran for
// more than peerSlack of that. A call that keeps its own thread blocked
// past its deadline (in a futex wait, say) does not stop the probe, which
// runs on another thread, so such lateness is caught.
const probePeriod = 500 * time.Microsecond

type stallProbe struct {
	deadline atomic.Int64 // unix ns: the running call's deadline
	lateRun  atomic.Int64 // ns the probe ran after it
	stop     atomic.Bool
	done     chan struct{}
}

func startProbe() *stallProbe {
	p := &stallProbe{done: make(chan struct{})}
	p.deadline.Store(math.MaxInt64)
	go func() {
		defer close(p.done)
		last := time.Now().UnixNano()
		for !p.stop.Load() {
			time.Sleep(probePeriod)
			now := time.Now().UnixNano()
			if dl := p.deadline.Load(); now > dl {
				p.lateRun.Add(min(now-last, now-dl, int64(2*probePeriod)))
			}
			last = now
		}
	}()
	return p
}

// arm starts measuring a call whose deadline is dl.
func (p *stallProbe) arm(dl time.Time) {
	p.lateRun.Store(0)
	p.deadline.Store(dl.UnixNano())
}

// ran returns how long the probe ran after the deadline, and disarms.
func (p *stallProbe) ran() time.Duration {
	p.deadline.Store(math.MaxInt64)
	return time.Duration(p.lateRun.Load())
}

func (p *stallProbe) close() { p.stop.Store(true); <-p.done }

// peerOp is one operation of the party: it must return within limit (its
// own timeout) plus peerSlack. A negative limit marks an operation that
// its contract lets wait without a bound (only the watchdog bounds it).
type peerOp struct {
	name  string
	limit time.Duration
	run   func() error
}

// peerKind sets up one kind in mem and returns the operations to run; d
// picks a short timeout.
type peerKind struct {
	name string
	size int
	ops  func(mem []byte, d func() time.Duration) ([]peerOp, error)
}

// fenced is a mapping with a guard page on each side; mem ends where the
// second guard begins (rounded down to 64 bytes).
type fenced struct {
	region []byte
	mem    []byte
}

func newFenced(tb testing.TB, size int) *fenced {
	page := os.Getpagesize()
	inner := (size + page - 1) / page * page
	region, err := unix.Mmap(-1, 0, inner+2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mprotect(region[:page], unix.PROT_NONE); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mprotect(region[page+inner:], unix.PROT_NONE); err != nil {
		tb.Fatal(err)
	}
	start := page + (inner-size)&^63
	return &fenced{region: region, mem: region[start : start+size : start+size]}
}

// program decodes a fuzz input: a seed, then 6-byte (word, value) writes.
type program struct {
	seed   uint64
	writes []struct {
		word  int
		value uint32
	}
}

func decode(b []byte, words int) program {
	h := fnv.New64a()
	h.Write(b[:min(len(b), 8)])
	p := program{seed: h.Sum64()}
	for b = b[min(len(b), 8):]; len(b) >= 6; b = b[6:] {
		p.writes = append(p.writes, struct {
			word  int
			value uint32
		}{int(binary.LittleEndian.Uint16(b)) % words, binary.LittleEndian.Uint32(b[2:])})
	}
	return p
}

// peerSeeds are inputs every target starts from: no writes, and writes of
// the values that break careless code (zero, all ones, small counts, our
// own pid) into the first words.
func peerSeeds(f *testing.F, words int) {
	f.Add([]byte("clean..."))
	for _, v := range []uint32{0, ^uint32(0), 1, 2, 3, 1000 << 3, 1000<<3 | 2, uint32(os.Getpid()), 1 << 31} {
		b := []byte("seed....")
		for w := 0; w < min(words, 24); w++ {
			b = binary.LittleEndian.AppendUint16(b, uint16(w))
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		f.Add(b)
	}
}

const peerOpsPerInput = 24

func fuzzPeer(f *testing.F, k peerKind) {
	fm := newFenced(f, k.size)
	words := k.size / 4
	peerSeeds(f, words)
	hk := hostileKindByName(k.name)
	f.Fuzz(func(t *testing.T, b []byte) {
		defer watchdog(fuzzWatch, "peer "+k.name)()
		p := decode(b, words)
		mem := fm.mem
		clear(mem)
		rng := rand.New(rand.NewPCG(p.seed, 7))
		d := func() time.Duration { return time.Duration(rng.IntN(3)) * time.Millisecond }
		ops, err := k.ops(mem, d)
		if err != nil {
			t.Fatalf("setting up the %s: %v", k.name, err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		if len(p.writes) > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					for _, w := range p.writes {
						atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[4*w.word])), w.value)
						runtime.Gosched()
					}
					time.Sleep(20 * time.Microsecond)
				}
			}()
		}
		defer func() {
			stop.Store(true)
			wg.Wait()
		}()
		probe := startProbe()
		defer probe.close()
		for range peerOpsPerInput {
			op := ops[rng.IntN(len(ops))]
			start := time.Now()
			probe.arm(start.Add(op.limit))
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("PANIC: %v", r)
					}
				}()
				return op.run()
			}()
			late := time.Since(start) - op.limit
			if ran := probe.ran(); op.limit >= 0 && late > peerSlack && ran > peerSlack {
				t.Fatalf("%s %s returned %v after its deadline (%v), %v of it with the process running",
					k.name, op.name, late, op.limit, ran)
			}
			if err != nil {
				if c := classify(hk, err); c != "ErrCorrupt" && c != "documented" {
					t.Fatalf("%s %s: %v", k.name, op.name, err)
				}
			}
		}
	})
}

// timed returns an op that runs f with a fresh short timeout.
func timed(name string, d func() time.Duration, f func(d time.Duration) error) peerOp {
	dd := d()
	return peerOp{name, dd, func() error { return f(dd) }}
}

// ctxOp returns an op that runs f with a context of a fresh short timeout.
func ctxOp(name string, d func() time.Duration, f func(ctx context.Context) error) peerOp {
	dd := d()
	return peerOp{name, dd, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), dd)
		defer cancel()
		err := f(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		return err
	}}
}

func now(name string, f func() error) peerOp { return peerOp{name, 0, f} }

const peerCheck = 2 * time.Millisecond

func FuzzPeerLock(f *testing.F) {
	fuzzPeer(f, peerKind{name: "lock", size: lock.Size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		l, err := lock.Init(mem, &lock.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		release := func(ok bool, err error) error {
			if ok {
				if errors.Is(err, lock.ErrOwnerDead) {
					l.Consistent()
				}
				return l.Release()
			}
			return err
		}
		return []peerOp{
			timed("AcquireTimeout", d, func(d time.Duration) error { return release(l.AcquireTimeout(d)) }),
			now("TryAcquire", func() error { return release(l.TryAcquire()) }),
			ctxOp("Acquire", d, func(ctx context.Context) error {
				err := l.Acquire(ctx)
				if err == nil || errors.Is(err, lock.ErrOwnerDead) {
					return release(true, err)
				}
				return err
			}),
			now("State", func() error { _ = l.State(); _ = l.Held(); return nil }),
		}, nil
	}})
}

func FuzzPeerRLock(f *testing.F) {
	fuzzPeer(f, peerKind{name: "rlock", size: rlock.Size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		r, err := rlock.Init(mem, &rlock.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		release := func(ok bool, err error) error {
			if ok {
				if errors.Is(err, rlock.ErrOwnerDead) {
					r.Consistent()
				}
				r.TryAcquire()
				_, err := r.ReleaseAll()
				return err
			}
			return err
		}
		return []peerOp{
			timed("AcquireTimeout", d, func(d time.Duration) error { return release(r.AcquireTimeout(d)) }),
			timed("AcquireLevelTimeout", d, func(d time.Duration) error { return release(r.AcquireLevelTimeout(d, 3)) }),
			now("TryAcquire", func() error { return release(r.TryAcquire()) }),
			now("Release", func() error { return r.Release() }),
			now("State", func() error { _ = r.State(); _ = r.Level(); return nil }),
		}, nil
	}})
}

func FuzzPeerSemaphore(f *testing.F) {
	fuzzPeer(f, peerKind{name: "semaphore", size: semaphore.Size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		s, err := semaphore.Init(mem, 1, nil)
		if err != nil {
			return nil, err
		}
		return []peerOp{
			timed("AcquireTimeout", d, func(d time.Duration) error { _, err := s.AcquireTimeout(d); return err }),
			ctxOp("Acquire", d, func(ctx context.Context) error { return s.Acquire(ctx) }),
			now("TryAcquire", func() error { _, err := s.TryAcquire(); return err }),
			now("Release", func() error { return s.Release(1) }),
			now("State", func() error { _ = s.State(); return nil }),
		}, nil
	}})
}

func FuzzPeerBoundedSemaphore(f *testing.F) {
	fuzzPeer(f, peerKind{name: "semaphore", size: semaphore.Size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		s, err := semaphore.InitBounded(mem, 2, nil)
		if err != nil {
			return nil, err
		}
		return []peerOp{
			timed("AcquireTimeout", d, func(d time.Duration) error { _, err := s.AcquireTimeout(d); return err }),
			ctxOp("Acquire", d, func(ctx context.Context) error { return s.Acquire(ctx) }),
			now("TryAcquire", func() error { _, err := s.TryAcquire(); return err }),
			now("Release", func() error { return s.Release(1) }),
			now("State", func() error { _ = s.State(); return nil }),
		}, nil
	}})
}

func FuzzPeerEvent(f *testing.F) {
	fuzzPeer(f, peerKind{name: "event", size: event.Size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		e, err := event.Init(mem, nil)
		if err != nil {
			return nil, err
		}
		return []peerOp{
			now("Set", func() error { e.Set(); return nil }),
			now("Clear", func() error { e.Clear(); return nil }),
			timed("WaitTimeout", d, func(d time.Duration) error { e.WaitTimeout(d); return nil }),
			ctxOp("Wait", d, func(ctx context.Context) error { return e.Wait(ctx) }),
			now("State", func() error { _ = e.State(); _ = e.IsSet(); return nil }),
		}, nil
	}})
}

func FuzzPeerCondition(f *testing.F) {
	fuzzPeer(f, peerKind{name: "condition", size: condition.SizeOf(4), ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		c, err := condition.Init(mem, nil, &condition.Options{Slots: 4, CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		// withLock runs f holding the lock, for at most the lock's timeout
		// plus f's.
		withLock := func(d time.Duration, f func() error) error {
			ok, err := c.AcquireTimeout(d)
			if !ok {
				return err
			}
			if errors.Is(err, condition.ErrOwnerDead) {
				c.Lock().(*rlock.RLock).Consistent()
			}
			return errors.Join(f(), c.Release())
		}
		dw := d()
		ops := []peerOp{
			timed("AcquireTimeout+Notify", d, func(d time.Duration) error { return withLock(d, func() error { return c.Notify(1) }) }),
			timed("AcquireTimeout+NotifyAll", d, func(d time.Duration) error { return withLock(d, c.NotifyAll) }),
			now("State", func() error { _ = c.State(); return nil }),
		}
		// WaitTimeout's timeout bounds the wait for a Notify; then it
		// reacquires the lock without a bound, as Python's wait does. This
		// peer rewrites the lock word every 20 µs for as long as the
		// operations run, so a reacquire that takes a dead writer's word
		// over finds it rewritten and starts again, for ever: the watchdog
		// fires (seen in CI and in about 1 run in 3 here). Known, not
		// fixed: a bounded reacquire needs a decision on what Wait returns
		// without its lock. Run with -faults.known.
		if *known {
			ops = append(ops, peerOp{"AcquireTimeout+WaitTimeout", -1, func() error {
				return withLock(dw, func() error { _, err := c.WaitTimeout(dw); return err })
			}})
		}
		return ops, nil
	}})
}

func FuzzPeerBarrier(f *testing.F) {
	fuzzPeer(f, peerKind{name: "barrier", size: barrier.SizeOf(2, 0), ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		b, err := barrier.Init(mem, 2, &barrier.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		return []peerOp{
			timed("WaitTimeout", d, func(d time.Duration) error {
				idx, err := b.WaitTimeout(d)
				if err == nil && (idx < 0 || idx >= b.Parties()) {
					return fmt.Errorf("index %d of a %d-party barrier with a nil error", idx, b.Parties())
				}
				return err
			}),
			ctxOp("Wait", d, func(ctx context.Context) error {
				idx, err := b.Wait(ctx)
				if err == nil && (idx < 0 || idx >= b.Parties()) {
					return fmt.Errorf("index %d of a %d-party barrier with a nil error", idx, b.Parties())
				}
				return err
			}),
			now("Reset", func() error { b.Reset(); return nil }),
			now("Abort", func() error { b.Abort(); return nil }),
			now("State", func() error { _ = b.State(); _ = b.NWaiting(); _ = b.Broken(); return nil }),
		}, nil
	}})
}

func FuzzPeerValue(f *testing.F) {
	wide, _ := value.SizeOf[quad]()
	narrow, _ := value.SizeOf[int64]()
	fuzzPeer(f, peerKind{name: "value", size: wide + narrow, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		o := &value.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()}
		q, err := value.Init(mem[:wide], quad{}, o)
		if err != nil {
			return nil, err
		}
		n, err := value.Init[int64](mem[wide:], 0, o)
		if err != nil {
			return nil, err
		}
		return []peerOp{
			now("Load", func() error { _ = q.Load(); _ = n.Load(); return nil }),
			now("Add", func() error { n.Add(1); n.CompareAndSwap(n.Load(), 3); n.Store(4); return nil }),
			timed("StoreTimeout", d, func(d time.Duration) error { q.StoreTimeout(quad{1, 2, 3, 4}, d); return nil }),
			timed("SwapTimeout", d, func(d time.Duration) error { q.SwapTimeout(quad{A: 1}, d); return nil }),
			timed("CompareAndSwapTimeout", d, func(d time.Duration) error { q.CompareAndSwapTimeout(quad{}, quad{B: 1}, d); return nil }),
			now("TryStore", func() error { q.TryStore(quad{C: 1}); return nil }),
			ctxOp("StoreContext", d, func(ctx context.Context) error { return q.StoreContext(ctx, quad{D: 1}) }),
			ctxOp("UpdateContext", d, func(ctx context.Context) error {
				if _, err := q.UpdateContext(ctx, func(x *quad) { x.A++ }); err != nil {
					return err
				}
				_, err := n.UpdateContext(ctx, func(x *int64) { *x++ })
				return err
			}),
			now("State", func() error { _ = q.State(); _ = n.State(); return nil }),
		}, nil
	}})
}

func FuzzPeerArray(f *testing.F) {
	size, _ := array.SizeOf[int64](8)
	fuzzPeer(f, peerKind{name: "array", size: size, ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		a, err := array.Init[int64](mem, 8, nil, &array.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		return []peerOp{
			// At, Set, CopyOut and CopyIn take the lock without a bound: a
			// peer that holds it (or writes a live pid into it) blocks them,
			// so only the bounded UpdateContext is fuzzed here.
			ctxOp("UpdateContext", d, func(ctx context.Context) error {
				return a.UpdateContext(ctx, 0, 8, func(s []int64) { s[0]++ })
			}),
			now("State", func() error { _ = a.State(); return nil }),
		}, nil
	}})
}

func FuzzPeerQueue(f *testing.F) {
	fuzzPeer(f, peerKind{name: "queue", size: ringbuf.SizeOfJoinable(4, 32), ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		q, err := ringbuf.InitJoinable(mem, 4, 32, &ringbuf.Options{CheckInterval: peerCheck, Registry: fuzzRegistry()})
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 64)
		return []peerOp{
			timed("PutTimeout", d, func(d time.Duration) error { return q.PutTimeout([]byte("hello"), d) }),
			timed("GetIntoTimeout", d, func(d time.Duration) error {
				_, err := q.GetIntoTimeout(buf, d)
				if err == nil {
					err = q.TaskDone()
				}
				return err
			}),
			timed("ReserveTimeout", d, func(d time.Duration) error {
				r, err := q.ReserveTimeout(5, d)
				if err == nil {
					copy(r.Bytes(), "world")
					err = r.Commit()
				}
				return err
			}),
			timed("BorrowTimeout", d, func(d time.Duration) error {
				b, err := q.BorrowTimeout(d)
				if err == nil {
					_ = b.Bytes()
					err = b.Release()
				}
				return err
			}),
			timed("JoinTimeout", d, func(d time.Duration) error { _, err := q.JoinTimeout(d); return err }),
			now("State", func() error { _ = q.State(); _ = q.Len(); return nil }),
		}, nil
	}})
}

func FuzzPeerPipe(f *testing.F) {
	po := &ringbuf.PipeOptions{Capacity: 256, CheckInterval: peerCheck, Registry: fuzzRegistry()}
	fuzzPeer(f, peerKind{name: "pipe", size: ringbuf.PipeSizeOf(po), ops: func(mem []byte, d func() time.Duration) ([]peerOp, error) {
		c0, err := ringbuf.InitPipe(mem, po)
		if err != nil {
			return nil, err
		}
		c1, err := ringbuf.AttachPipe(mem, 1, po)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 512)
		return []peerOp{
			timed("SendTimeout", d, func(d time.Duration) error { return c0.SendTimeout(buf[:17], d) }),
			timed("RecvTimeout", d, func(d time.Duration) error { _, err := c1.RecvTimeout(buf, d); return err }),
			timed("Poll", d, func(d time.Duration) error { _, err := c1.Poll(d); return err }),
			now("TrySend/TryRecv", func() error {
				return errors.Join(c1.TrySend(buf[:3]), func() error { _, err := c0.TryRecv(buf); return err }())
			}),
			now("State", func() error { _ = c0.State(); _ = c1.State(); return nil }),
		}, nil
	}})
}
