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
// While every holder lives, nobody wakes. The same checker watches owner
// words for objects whose waiters depend on one peer (WatchOwner: a
// Pipe's ends), whose sleepers it wakes on a word of their own, and runs
// an object's own check for its sleepers (WatchFunc: a Queue's getters,
// whose wake a producer killed after its commit never sent).
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

// A watch is one watched word; every waiter of the process on it shares
// it. A lock word (owner false) names its holder, and its sleepers, on
// the same word, are woken when the holder is dead or the lock free or
// not recoverable. An owner word (owner true, WatchOwner) holds a packed
// proc.ID, or 0 for nobody, and the sleepers on wake are woken when it
// names a dead process.
type watch struct {
	w     *uint64
	wake  *uint32
	owner bool
	fn    func(first bool) // WatchFunc: the check itself; w, wake and reg are nil
	ran   bool             // fn has run since the watch was made
	reg   *proc.Registry
	key   watchKey
	every time.Duration // the shortest check interval of its waiters
	next  time.Time     // when it is checked next
	refs  int           // waiters registered; 0: kept until the next pass
	idx   int           // in checker.list
}

type watchKey struct {
	w    *uint64
	wake *uint32
	reg  *proc.Registry
	obj  any // WatchFunc's key
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
	checker.add(watchKey{w: m.w, wake: (*uint32)(unsafe.Pointer(m.w)), reg: m.reg}, false, nil, m.check)
}

func (m *Mutex) unwatch() {
	if m.reg.IsBlind() {
		return
	}
	checker.remove(watchKey{w: m.w, wake: (*uint32)(unsafe.Pointer(m.w)), reg: m.reg})
}

// WatchOwner registers a sleeper on wake with the process's liveness
// checker, for an object whose waiters depend on one peer: every check
// interval the checker reads the packed proc.ID in *owner (0: nobody)
// and, if reg finds that process dead, wakes this process's sleepers on
// wake (futex.WakeLocal, which changes no word: a woken waiter that finds
// nothing to do asks about the peer itself). Waiters of the same pair of
// words share one watch. UnwatchOwner undoes one WatchOwner; both words
// must stay mapped until it returns. With the blind registry nothing is
// watched, and WatchOwner reports false: nobody is ever found dead.
func WatchOwner(owner *uint64, wake *uint32, reg *proc.Registry, check time.Duration) bool {
	if reg.IsBlind() {
		return false
	}
	if check <= 0 {
		check = DefaultCheckInterval
	}
	checker.add(watchKey{w: owner, wake: wake, reg: reg}, true, nil, check)
	return true
}

// UnwatchOwner undoes one WatchOwner that reported true.
func UnwatchOwner(owner *uint64, wake *uint32, reg *proc.Registry) {
	checker.remove(watchKey{w: owner, wake: wake, reg: reg})
}

// WatchFunc registers a waiter of an object whose liveness check is its
// own (a Condition's waiters, a Barrier's parties) with the process's
// checker: every check interval, while at least one waiter is registered
// under key (a comparable value, such as the object's handle), the
// checker calls fn once for all of them, so that the waiters themselves
// sleep until something changes. fn finds the dead and acts on it (its
// changes to the shared words wake whom they concern), and wakes the
// sleepers a wake lost to a killed process would have woken; first is
// true on its first call since the watch was made (by the first waiter
// to register while none was), when fn cannot know what changed since
// the waiters went to sleep. It runs on the
// checker goroutine while no waiter under key can unregister, so what a
// waiter keeps mapped stays mapped; it must not block, nor call the
// checker's functions. The fn of the first waiter under key is the one
// called. UnwatchFunc undoes one WatchFunc.
func WatchFunc(key any, fn func(first bool), check time.Duration) {
	if check <= 0 {
		check = DefaultCheckInterval
	}
	checker.add(watchKey{obj: key}, false, fn, check)
}

// UnwatchFunc undoes one WatchFunc under key.
func UnwatchFunc(key any) { checker.remove(watchKey{obj: key}) }

// add registers one waiter on the watch k, making it if need be.
func (c *checkerT) add(k watchKey, owner bool, fn func(bool), check time.Duration) {
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
		wt = &watch{w: k.w, wake: k.wake, owner: owner, fn: fn, reg: k.reg, key: k, every: check, next: time.Now().Add(check), idx: len(c.list)}
		c.byKey[k] = wt
		c.list = append(c.list, wt)
		kick = true
	case check < wt.every:
		wt.every = check
		wt.next = time.Now().Add(check)
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

// remove undoes one add of k.
func (c *checkerT) remove(k watchKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wt := c.byKey[k]
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
	delete(c.byKey, wt.key)
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
			if wt.fn != nil {
				wt.fn(!wt.ran)
				wt.ran = true
				continue
			}
			v := atomic.LoadUint64(wt.w)
			var id proc.ID
			ask := true
			switch {
			case wt.owner && v == 0:
				continue // nobody to ask about
			case wt.owner:
				id = proc.Unpack(v)
			case v != 0 && v&notRecoverable == 0:
				id = holder(v)
			default:
				ask = false // a free or unrecoverable lock: wake
			}
			if ask {
				k := aliveKey{wt.reg, id}
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
			c.due = append(c.due, wt.wake)
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
