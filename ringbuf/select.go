package ringbuf

import "sync/atomic"

// Waiting on a queue or a pipe from outside it (waitset.Select). Each Arm
// registers the caller as a sleeper, so that the operation that may make
// the call ready (a Put, a Get, a Send, a Close) wakes the returned word,
// and returns the value to sleep on; the caller then checks again (a try
// form) before it sleeps while *word == val, and undoes the registration
// with the matching Disarm, whatever happened.

// ArmGet registers a sleeping getter; see DisarmGet.
func (q *Queue) ArmGet() (word *uint32, val uint32) {
	return &q.notEmpty.seq, q.notEmpty.register()
}

// DisarmGet takes back the registration ArmGet made (val is its value).
func (q *Queue) DisarmGet(val uint32) { q.notEmpty.leave(val) }

// ArmPut registers a sleeping putter; see DisarmPut.
func (q *Queue) ArmPut() (word *uint32, val uint32) {
	return &q.notFull.seq, q.notFull.register()
}

// DisarmPut takes back the registration ArmPut made (val is its value).
func (q *Queue) DisarmPut(val uint32) { q.notFull.leave(val) }

// ArmRecv registers a sleeping receiver on the pipe end; see DisarmRecv.
// A pipe end has one receiver at a time: Recv and a Select on the same
// end must not wait together. It panics on a send-only end.
func (c *Conn) ArmRecv() (word *uint32, val uint32) {
	atomic.StoreUint32(&c.rx.sh.rwait, 1)
	return &c.rx.sh.rwait, 1
}

// DisarmRecv takes back the registration ArmRecv made.
func (c *Conn) DisarmRecv() { atomic.CompareAndSwapUint32(&c.rx.sh.rwait, 1, 0) }
