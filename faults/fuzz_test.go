//go:build linux

package faults_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/array"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/shm"
	"github.com/mpipc/mpipc/value"
)

// The Attach fuzz targets feed arbitrary bytes to an Attach and assert:
// an error or a valid handle, never a crash; and a handle on garbage
// neither crashes nor hangs on its first operations (each bounded by a
// short timeout, and the whole input by a watchdog that turns a hang into
// a crash the fuzzer records).

// alignedCopy copies b into a fresh 64-byte-aligned buffer of at least n
// bytes (zero-filled past b).
func alignedCopy(b []byte, n int) []byte {
	size := max(n, len(b))
	buf := make([]byte, size+64)
	off := (64 - int(uintptr(unsafe.Pointer(&buf[0]))%64)) % 64
	mem := buf[off : off+size : off+size]
	copy(mem, b)
	return mem
}

// fuzzRegistry is a process registry for objects in fuzzed memory: with
// it, an owner word the fuzzer made up names a dead process (without one,
// nothing can be proven dead and a made-up holder is waited for).
var fuzzRegistry = sync.OnceValue(func() *shm.Registry {
	seg, err := shm.CreateAnonymous(0)
	if err != nil {
		panic(err)
	}
	return seg.Registry()
})

// watchdog panics, crashing the fuzz worker, if the input is not done
// within d: a hang becomes a recorded crash.
func watchdog(d time.Duration, what string) (stop func() bool) {
	return time.AfterFunc(d, func() { panic("faults: operation hung on fuzzed input: " + what) }).Stop
}

// documentedPanic reports whether r is one of the panics the packages
// document for a lock that can no longer be acquired (array, value:
// "not recoverable"). Any other panic is a defect.
func documentedPanic(r any) bool {
	// None: value and array used to panic on a lock word a peer made not
	// recoverable (TestRegression*Panics*); they now recover or go on
	// without the lock, so every panic on corrupt memory is a failure.
	return false
}

const fuzzWatch = 10 * time.Second

func seedBytes(n int, init func(mem []byte)) []byte {
	mem := alignedCopy(nil, n)
	init(mem)
	return append([]byte(nil), mem...)
}

func FuzzLockAttach(f *testing.F) {
	f.Add(seedBytes(lock.Size, func(m []byte) { lock.Init(m, nil) }))
	f.Add(seedBytes(lock.Size, func(m []byte) { l, _ := lock.Init(m, nil); l.TryAcquire() }))
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer watchdog(fuzzWatch, "lock")()
		l, err := lock.Attach(alignedCopy(b, 0), &lock.Options{CheckInterval: time.Millisecond})
		if err != nil {
			return
		}
		_ = l.State()
		_ = l.Held()
		ok, err := l.AcquireTimeout(5 * time.Millisecond)
		if ok {
			if errors.Is(err, lock.ErrOwnerDead) {
				l.Consistent()
			}
			if err := l.Release(); err != nil {
				t.Fatalf("release after acquire: %v", err)
			}
		}
		l.TryAcquire()
		l.Release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		l.Acquire(ctx)
	})
}

func FuzzRLockAttach(f *testing.F) {
	f.Add(seedBytes(rlock.Size, func(m []byte) { rlock.Init(m, nil) }))
	f.Add(seedBytes(rlock.Size, func(m []byte) {
		r, _ := rlock.Init(m, nil)
		r.TryAcquire()
		r.TryAcquire()
	}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		defer watchdog(fuzzWatch, "rlock")()
		r, err := rlock.Attach(alignedCopy(b, 0), &rlock.Options{CheckInterval: time.Millisecond})
		if err != nil {
			return
		}
		_ = r.State()
		_ = r.Level()
		if ok, err := r.AcquireTimeout(5 * time.Millisecond); ok {
			if errors.Is(err, rlock.ErrOwnerDead) {
				r.Consistent()
			}
			r.TryAcquire()
			if lv, err := r.ReleaseAll(); err != nil || lv < 1 {
				t.Fatalf("ReleaseAll after acquire: level %d, %v", lv, err)
			}
		}
		r.Release()
		if ok, _ := r.AcquireLevelTimeout(5*time.Millisecond, 3); ok {
			r.ReleaseAll()
		}
	})
}

func FuzzConditionAttach(f *testing.F) {
	n := condition.SizeOf(4)
	f.Add(byte(0), seedBytes(n, func(m []byte) { condition.Init(m, nil, &condition.Options{Slots: 4}) }))
	f.Add(byte(1), seedBytes(n, func(m []byte) {
		lk, _ := lock.Init(make([]byte, lock.Size), nil)
		condition.Init(m, lk, &condition.Options{Slots: 4})
	}))
	f.Add(byte(2), seedBytes(n, func(m []byte) {
		lk, _ := rlock.Init(make([]byte, rlock.Size), nil)
		condition.Init(m, lk, &condition.Options{Slots: 4})
	}))
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		defer watchdog(fuzzWatch, "condition")()
		var lk condition.Locker
		switch which % 3 {
		case 1:
			l, _ := lock.Init(alignedCopy(nil, lock.Size), nil)
			lk = l
		case 2:
			r, _ := rlock.Init(alignedCopy(nil, rlock.Size), nil)
			lk = r
		}
		c, err := condition.Attach(alignedCopy(b, 0), lk, &condition.Options{CheckInterval: time.Millisecond})
		if err != nil {
			return
		}
		_ = c.State()
		ok, err := c.AcquireTimeout(5 * time.Millisecond)
		if !ok {
			return
		}
		if errors.Is(err, condition.ErrOwnerDead) {
			if cs, ok := c.Lock().(interface{ Consistent() error }); ok {
				cs.Consistent()
			}
		}
		c.Notify(1)
		c.WaitTimeout(2 * time.Millisecond)
		c.NotifyAll()
		c.WaitFor(context.Background(), func() bool { return true })
		c.Release()
	})
}

type wide struct{ A, B, C, D uint64 }

func FuzzValueAttach(f *testing.F) {
	n8, _ := value.SizeOf[int64]()
	nw, _ := value.SizeOf[wide]()
	f.Add(byte(0), seedBytes(n8, func(m []byte) { value.Init[int64](m, 7, nil) }))
	f.Add(byte(1), seedBytes(nw, func(m []byte) { value.Init(m, wide{1, 2, 3, 4}, nil) }))
	f.Add(byte(2), seedBytes(nw, func(m []byte) { value.InitRaw(m, wide{1, 2, 3, 4}, nil) }))
	f.Add(byte(3), seedBytes(n8, func(m []byte) { value.InitRaw[int32](m, 5, nil) }))
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		defer watchdog(fuzzWatch, "value")()
		defer func() {
			if r := recover(); r != nil && !documentedPanic(r) {
				panic(r)
			}
		}()
		mem := alignedCopy(b, 0)
		opts := &value.Options{CheckInterval: time.Millisecond, Registry: fuzzRegistry()}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		switch which % 4 {
		case 0:
			v, err := value.Attach[int64](mem, opts)
			if err != nil {
				return
			}
			v.Store(v.Load() + 1)
			v.Add(2)
			v.CompareAndSwap(3, 4)
			v.UpdateContext(ctx, func(x *int64) { *x++ })
			_ = v.State()
		case 1:
			v, err := value.Attach[wide](mem, opts)
			if err != nil {
				return
			}
			x := v.Load()
			x.A++
			v.Store(x)
			v.Swap(x)
			v.CompareAndSwap(x, wide{})
			v.UpdateContext(ctx, func(x *wide) { x.B++ })
			_ = v.State()
		case 2:
			v, err := value.AttachRaw[wide](mem, opts)
			if err != nil {
				return
			}
			v.Store(v.Load())
			v.Update(func(x *wide) { x.C++ })
			_ = v.State()
		case 3:
			v, err := value.AttachRaw[int32](mem, opts)
			if err != nil {
				return
			}
			v.Add(1)
			v.Update(func(x *int32) { *x *= 2 })
			_ = v.State()
		}
	})
}

func FuzzArrayAttach(f *testing.F) {
	n, _ := array.SizeOf[int64](5)
	f.Add(byte(0), seedBytes(n, func(m []byte) { array.Init(m, 5, []int64{1, 2, 3}, nil) }))
	f.Add(byte(1), seedBytes(n, func(m []byte) { array.InitRaw(m, 5, []int64{1, 2, 3}) }))
	nb, _ := array.SizeOf[byte](40)
	f.Add(byte(2), seedBytes(nb, func(m []byte) { array.Init(m, 40, []byte("hello"), nil) }))
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		defer watchdog(fuzzWatch, "array")()
		defer func() {
			if r := recover(); r != nil && !documentedPanic(r) {
				panic(r)
			}
		}()
		mem := alignedCopy(b, 0)
		opts := &array.Options{CheckInterval: time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		switch which % 3 {
		case 0:
			a, err := array.Attach[int64](mem, opts)
			if err != nil {
				return
			}
			if a.Len() > 0 {
				// Element methods block on the lock without a timeout: take
				// it with a timeout first, as a careful caller would.
				lk := a.Lock()
				if lt, ok := lk.(*lock.Lock); ok {
					if got, _ := lt.AcquireTimeout(5 * time.Millisecond); !got {
						return
					}
					lt.Consistent()
					lt.Release()
				}
				a.Set(a.Len()-1, a.At(0)+1)
				_ = a.Slice(0, min(a.Len(), 8))
			}
			a.UpdateContext(ctx, 0, min(a.Len(), 4), func(s []int64) {
				for i := range s {
					s[i]++
				}
			})
			_ = a.State()
		case 1:
			a, err := array.AttachRaw[int64](mem)
			if err != nil {
				return
			}
			if a.Len() > 0 {
				a.Set(a.Len()-1, a.At(0))
				v := a.View()
				_ = v[len(v)-1]
			}
			_ = a.State()
		case 2:
			a, err := array.AttachRaw[byte](mem)
			if err != nil {
				return
			}
			_ = a.Value()
			_ = a.Raw()
			a.SetValue([]byte("xy"))
		}
	})
}
