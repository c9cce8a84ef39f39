package robust

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proc"
)

// The liveness checker. A waiter must learn that the holder of its lock
// died, but a waiter that woke every check interval to ask would cost
// n/interval wakes a second (10,000 waiters on the locks of one live
// process, checking every 100 ms: 100,000 wakes a second, each a trip
// through the scheduler, for nothing). So the waiters of a process sleep
// without a check deadline and register their lock word with one checker
// goroutine instead. Every check interval it reads each watched word,
// asks the registry about each distinct holder once (one fcntl), and
// wakes this process's sleepers on a word whose holder is dead
// (futex.WakeLocal); they find the holder dead and take the lock over.
// While every holder lives, nobody wakes.
//
// Not a FUTEX_WAKE of the word: the value of a dead holder's word does
// not change, and the futex hub, whose one futex_waitv learns of one woken
// word per return, drops wakes that change nothing; with 10,000 such words
// the takeovers trickled in over seconds. Waiters of other processes have
// their own checker; whoever swaps the word first takes the lock over.
//
// A watch is checked first at most one interval after it was registered,
// then every interval or a little sooner (checks due within half an
// interval are made together, in one pass): a dead holder is found within
// one interval, as when each waiter had its own timer. While the holder
// stays dead and the word watched, every pass wakes its sleepers again,
// which also covers a wake lost on the legacy path.

// A watch is one watched lock word; every waiter of the process on the
// word shares it.
type watch struct {
	w     *uint64
	reg   *proc.Registry
	every time.Duration // the shortest check interval of its waiters
	next  time.Time     // when it is checked next
	refs  int           // waiters registered; 0: kept until the next pass
	idx   int           // in checker.list
}

type watchKey struct {
	w   *uint64
	reg *proc.Registry
}

type aliveKey struct {
	reg *proc.Registry
	id  proc.ID
}

type checkerT struct {
	mu      sync.Mutex
	byKey   map[watchKey]*watch
	list    []*watch
	running bool
	wakeAt  time.Time     // when the checker wakes next (while running)
	kick    chan struct{} // a watch due sooner than the checker sleeps
	alive   map[aliveKey]bool
	due     []*uint32     // words to wake after a pass (checker goroutine)
	lookups atomic.Uint64 // registry lookups made, for tests
}

var checker checkerT

// watch registers a waiter on m's word with the checker; unwatch undoes
// it. The blind registry finds nobody dead: a Mutex with it is not
// watched.
func (m *Mutex) watch() {
	if m.reg.IsBlind() {
		return
	}
	k := watchKey{m.w, m.reg}
	c := &checker
	c.mu.Lock()
	defer c.mu.Unlock()
	wt := c.byKey[k]
	kick := false
	switch {
	case wt == nil:
		if c.byKey == nil {
			c.byKey = make(map[watchKey]*watch)
			c.alive = make(map[aliveKey]bool)
			c.kick = make(chan struct{}, 1)
		}
		wt = &watch{w: m.w, reg: m.reg, every: m.check, next: time.Now().Add(m.check), idx: len(c.list)}
		c.byKey[k] = wt
		c.list = append(c.list, wt)
		kick = true
	case m.check < wt.every:
		wt.every = m.check
		wt.next = time.Now().Add(m.check)
		kick = true
	}
	wt.refs++
	// Kick the checker only for a watch due before it wakes anyway: a
	// contended lock's waiter sleeps and leaves over and over, and a kick
	// each time would wake the checker goroutine (and the scheduler a
	// thread) for nothing.
	if !c.running {
		c.running = true
		go runChecker()
	} else if kick && wt.next.Before(c.wakeAt) {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (m *Mutex) unwatch() {
	if m.reg.IsBlind() {
		return
	}
	c := &checker
	c.mu.Lock()
	defer c.mu.Unlock()
	wt := c.byKey[watchKey{m.w, m.reg}]
	if wt == nil {
		panic("robust: unwatch without watch")
	}
	// The watch stays, without waiters, until the checker's next pass
	// drops it, so that a waiter that sleeps again soon (a contended
	// lock) finds it and costs the checker nothing.
	wt.refs--
}

// drop takes wt out of the checker's list and map; c.mu is held.
func (c *checkerT) drop(wt *watch) {
	delete(c.byKey, watchKey{wt.w, wt.reg})
	last := len(c.list) - 1
	if wt.idx != last {
		m := c.list[last]
		c.list[wt.idx], m.idx = m, wt.idx
	}
	c.list[last] = nil
	c.list = c.list[:last]
}

// runChecker is the checker goroutine. It ends when nothing is watched.
func runChecker() {
	c := &checker
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		if len(c.list) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		now := time.Now()
		next := now.Add(time.Hour)
		clear(c.alive)
		for i := 0; i < len(c.list); i++ {
			wt := c.list[i]
			if wt.refs == 0 {
				// Nobody waits on its word, which may be unmapped by
				// now: drop it unread (the last element takes its place).
				c.drop(wt)
				i--
				continue
			}
			// Up to half an interval early, so that the watches of a
			// pass are checked together rather than each at its own
			// instant.
			if now.Add(wt.every / 2).Before(wt.next) {
				next = minTime(next, wt.next)
				continue
			}
			wt.next = now.Add(min(wt.every, futex.MaxTimeout))
			next = minTime(next, wt.next)
			// Read under c.mu while a waiter is registered: that waiter
			// is inside its wait, so the word is mapped. Its sleepers
			// are woken unless the word names a live holder: also when
			// it is free or not recoverable, states a waiter acts on but
			// a sleeper hears of only through a wake that a releaser
			// killed between its swap and its wake, or a corrupting
			// peer, never sent.
			v := atomic.LoadUint64(wt.w)
			if v != 0 && v&notRecoverable == 0 {
				k := aliveKey{wt.reg, holder(v)}
				alive, ok := c.alive[k]
				if !ok {
					alive = wt.reg.Alive(k.id)
					c.alive[k] = alive
					c.lookups.Add(1)
				}
				if alive {
					continue
				}
			}
			c.due = append(c.due, (*uint32)(unsafe.Pointer(wt.w)))
		}
		c.wakeAt = next
		// Nothing left to watch: end here (a later watch starts a new
		// checker) rather than sleep an hour. Nothing is due then (a due
		// watch stays in the list), and this goroutine touches c.due no
		// more once a new checker may own it.
		if len(c.list) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		// Outside the lock, where a waiter may have left and its word
		// been unmapped since: futex.WakeLocal reads no word, and a wake
		// of whatever was mapped there since is a spurious wake, which
		// every waiter tolerates.
		for i, w := range c.due {
			futex.WakeLocal(w)
			c.due[i] = nil
		}
		c.due = c.due[:0]
		t.Reset(time.Until(next))
		select {
		case <-t.C:
		case <-c.kick:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
