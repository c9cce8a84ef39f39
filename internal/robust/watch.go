package robust

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

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
// notifies the waiters of a word whose holder is dead (it cancels the
// context they sleep with); they find the holder dead and take the lock
// over. While every holder lives, nobody wakes.
//
// Not a FUTEX_WAKE of the word: the value of a dead holder's word does not
// change, and the futex hub, whose one futex_waitv learns of one woken
// word per return, drops wakes that change nothing (see package futex);
// with 10,000 such words the takeovers trickled in over seconds.
//
// A watch is checked first at most one interval after it was registered,
// then every interval or a little sooner (checks due within half an
// interval are made together, in one pass): a dead holder is found within
// one interval, as when each waiter had its own timer. Waiters of other processes have their
// own checker; whoever swaps the word first takes the lock over.

// A watch is one watched lock word; every waiter of the process on the
// word shares it.
type watch struct {
	w     *uint64
	reg   *proc.Registry
	every time.Duration // the shortest check interval of its waiters
	next  time.Time     // when it is checked next
	subs  []*sub        // the waiters to notify
	idx   int           // in checker.list
}

// A sub is one waiter's request to be told that the holder died.
type sub struct {
	wt     *watch
	notify func()
	idx    int // in wt.subs; -1 once notified or cancelled
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
	kick    chan struct{} // a watch due sooner than the checker sleeps
	alive   map[aliveKey]bool
	fire    []func()
	lookups atomic.Uint64 // registry lookups made, for tests
}

var checker checkerT

// errHolderDead is the cause of a waiter's context cancelled by the
// checker.
var errHolderDead = errors.New("robust: holder found dead")

// Watch asks the process's liveness checker to call notify, once, from
// its goroutine, when it finds the holder of the lock dead (it looks every
// check interval, first one interval from now). Call the returned cancel
// when no longer waiting; it is safe to call after notify ran. A waiter
// that sleeps on the lock word outside Lock (a Select) uses it to learn of
// its holder's death without waking periodically. The blind registry
// finds nobody dead: then notify is never called.
func (m *Mutex) Watch(notify func()) (cancel func()) {
	if m.reg.IsBlind() {
		return func() {}
	}
	s := m.watch(notify)
	return func() { unwatch(s) }
}

func (m *Mutex) watch(notify func()) *sub {
	k := watchKey{m.w, m.reg}
	c := &checker
	c.mu.Lock()
	defer c.mu.Unlock()
	wt := c.byKey[k]
	kick := false
	if wt == nil {
		if c.byKey == nil {
			c.byKey = make(map[watchKey]*watch)
			c.alive = make(map[aliveKey]bool)
			c.kick = make(chan struct{}, 1)
		}
		wt = &watch{w: m.w, reg: m.reg, every: m.check, next: time.Now().Add(m.check), idx: len(c.list)}
		c.byKey[k] = wt
		c.list = append(c.list, wt)
		kick = true
	} else if m.check < wt.every {
		wt.every = m.check
		wt.next = time.Now().Add(m.check)
		kick = true
	}
	s := &sub{wt: wt, notify: notify, idx: len(wt.subs)}
	wt.subs = append(wt.subs, s)
	if !c.running {
		c.running = true
		go runChecker()
	} else if kick {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return s
}

// unwatch cancels s unless it was notified already.
func unwatch(s *sub) {
	c := &checker
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.idx < 0 {
		return
	}
	wt := s.wt
	last := len(wt.subs) - 1
	if s.idx != last {
		m := wt.subs[last]
		wt.subs[s.idx], m.idx = m, s.idx
	}
	wt.subs[last] = nil
	wt.subs = wt.subs[:last]
	s.idx = -1
	if last == 0 {
		c.drop(wt)
	}
}

// drop forgets wt, moving the last watch into its place; c.mu is held.
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
			// is inside its wait, so the word is mapped.
			// Its waiters are told unless the word names a live holder:
			// also when it is free or not recoverable, states a waiter
			// acts on but a sleeper hears of only through a wake that a
			// releaser killed between its swap and its wake, or a
			// corrupting peer, never sent.
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
			for j, s := range wt.subs {
				c.fire = append(c.fire, s.notify)
				s.idx = -1
				wt.subs[j] = nil
			}
			wt.subs = wt.subs[:0]
			c.drop(wt)
			i-- // the last watch moved into i
		}
		c.mu.Unlock()
		for i, f := range c.fire {
			f()
			c.fire[i] = nil
		}
		c.fire = c.fire[:0]
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
