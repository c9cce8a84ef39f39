package stats

import "sync/atomic"

// Stats is a snapshot of one handle's counters (or the sum over the
// handles of one object, in [Snapshot]). Every object kind reports the
// same fields; a kind where an event cannot happen reports zero for it
// (only lock-like objects and queues see an owner die, for instance).
type Stats struct {
	// Waits counts sleeps in the kernel: futex waits this handle entered
	// because what it waited for was not there.
	Waits uint64 `json:"waits"`
	// Wakes counts futex wake calls this handle made to release sleepers
	// (any process's): a Release, Set or Put that found a waiter.
	Wakes uint64 `json:"wakes"`
	// Timeouts counts blocking calls of this handle that gave up because
	// their deadline passed.
	Timeouts uint64 `json:"timeouts"`
	// OwnerDeaths counts recoveries from a dead peer: a lock taken over
	// from a holder that died (ErrOwnerDead), a queue slot reclaimed from
	// a claimant that died.
	OwnerDeaths uint64 `json:"owner_deaths"`
	// SpinSleeps counts calls whose spin ran out and that then slept:
	// each counts once however often it sleeps afterwards.
	SpinSleeps uint64 `json:"spin_sleeps"`
}

// Add returns the field-by-field sum of s and t.
func (s Stats) Add(t Stats) Stats {
	return Stats{
		Waits:       s.Waits + t.Waits,
		Wakes:       s.Wakes + t.Wakes,
		Timeouts:    s.Timeouts + t.Timeouts,
		OwnerDeaths: s.OwnerDeaths + t.OwnerDeaths,
		SpinSleeps:  s.SpinSleeps + t.SpinSleeps,
	}
}

// Counters are one handle's counters, in process memory. The zero value
// is ready to use. Its methods are called on slow paths only; each is one
// atomic add. A Counters must not be copied after first use.
type Counters struct {
	waits       atomic.Uint64
	wakes       atomic.Uint64
	timeouts    atomic.Uint64
	ownerDeaths atomic.Uint64
	spinSleeps  atomic.Uint64
}

// Sleep counts a sleep the caller is about to enter. spun says that the
// call spun before this sleep: the first Sleep of such a call also counts
// a spin that ended in sleep, and clears *spun so that later sleeps of the
// same call do not.
func (c *Counters) Sleep(spun *bool) {
	c.waits.Add(1)
	if *spun {
		*spun = false
		c.spinSleeps.Add(1)
	}
}

// Wake counts a futex wake call.
func (c *Counters) Wake() { c.wakes.Add(1) }

// Timeout counts a blocking call that gave up at its deadline.
func (c *Counters) Timeout() { c.timeouts.Add(1) }

// OwnerDead counts a recovery from a dead holder or claimant.
func (c *Counters) OwnerDead() { c.ownerDeaths.Add(1) }

// Load returns a snapshot of the counters.
func (c *Counters) Load() Stats {
	return Stats{
		Waits:       c.waits.Load(),
		Wakes:       c.wakes.Load(),
		Timeouts:    c.timeouts.Load(),
		OwnerDeaths: c.ownerDeaths.Load(),
		SpinSleeps:  c.spinSleeps.Load(),
	}
}
