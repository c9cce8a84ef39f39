package bench

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

// The message workloads (W3 over a transport, W6, W7, W8) are written once
// against msgConn, and every transport — mpipc's Queue and Pipe, os.Pipe,
// a SOCK_SEQPACKET socket pair — plugs into them, so that every system runs
// exactly the same protocol and checks.

// msgConn sends and receives whole messages of a fixed size.
type msgConn interface {
	send(b []byte) error
	recv(b []byte) error
}

// streamConn is a byte stream (a pipe): one write per message, reads until
// the message is complete.
type streamConn struct{ f *os.File }

func (c streamConn) send(b []byte) error {
	_, err := c.f.Write(b)
	return err
}

func (c streamConn) recv(b []byte) error {
	_, err := io.ReadFull(c.f, b)
	return err
}

// packetConn is a message socket: one write, one read per message.
type packetConn struct{ f *os.File }

func (c packetConn) send(b []byte) error {
	n, err := c.f.Write(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short send %d of %d", n, len(b))
	}
	return err
}

func (c packetConn) recv(b []byte) error {
	n, err := c.f.Read(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short message %d of %d", n, len(b))
	}
	return err
}

// stamp writes i into the first 8 bytes of msg and ^i into the last 8.
func stamp(msg []byte, i uint64) {
	binary.LittleEndian.PutUint64(msg, i)
	binary.LittleEndian.PutUint64(msg[len(msg)-8:], ^i)
}

// stamped returns the index of msg, or an error if its two stamps disagree.
func stamped(msg []byte) (uint64, error) {
	i := binary.LittleEndian.Uint64(msg)
	if j := binary.LittleEndian.Uint64(msg[len(msg)-8:]); j != ^i {
		return i, mismatch("torn message: head %d, tail %d", i, ^j)
	}
	return i, nil
}

// pingpong is W3 over a transport: worker 0 sends round i and waits for
// i+1; worker 1 waits for i and answers i+1. 8-byte messages.
func pingpong(w *Worker, out, in msgConn) error {
	var b [8]byte
	for i := uint64(0); i < uint64(w.N); i++ {
		if w.Idx == 0 {
			binary.LittleEndian.PutUint64(b[:], i)
			if err := out.send(b[:]); err != nil {
				return err
			}
			if err := in.recv(b[:]); err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint64(b[:]); got != i+1 {
				return mismatch("round %d answered %d", i, got)
			}
		} else {
			if err := in.recv(b[:]); err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint64(b[:]); got != i {
				return mismatch("expected round %d, got %d", i, got)
			}
			binary.LittleEndian.PutUint64(b[:], i+1)
			if err := out.send(b[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// spsc is W6: worker 0 sends n messages of size bytes, worker 1 receives
// them and checks exact FIFO order, contents and count (result word 0).
func spsc(w *Worker, c msgConn, size int) error {
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = 0xab
	}
	if w.Idx == 0 {
		for i := uint64(0); i < uint64(w.N); i++ {
			stamp(msg, i)
			if err := c.send(msg); err != nil {
				return err
			}
		}
		return nil
	}
	for i := uint64(0); i < uint64(w.N); i++ {
		if err := c.recv(msg); err != nil {
			return err
		}
		got, err := stamped(msg)
		if err != nil {
			return err
		}
		if got != i {
			return mismatch("ORDER: message %d arrived as number %d", got, i)
		}
	}
	*w.Result(0) = uint64(w.N)
	return nil
}

func checkReceived(sh *shared, n int64) error {
	if got := *sh.result(0); got != uint64(n) {
		return mismatch("received %d of %d messages", got, n)
	}
	return nil
}

// W7 roles: of 2p workers, workers 0 … p-1 produce and p … 2p-1 consume
// (p = 2 for W7, 4 and 8 for W7-4x4 and W7-8x8).
const (
	w7Pairs = 2
	w7End   = ^uint64(0)
)

// mpmc is W7 with w.Procs/2 producers and as many consumers: each producer
// p sends n/P ids (p·n/P …, P producers) and then one end marker; each
// consumer stops at its first end marker, checks per-producer FIFO order
// and stores count, Σid and Σmix64(id) in result words 3c, 3c+1, 3c+2.
func mpmc(w *Worker, c msgConn) error {
	var msg [64]byte
	producers := w.Procs / 2
	per := uint64(w.N) / uint64(producers)
	if w.Idx < producers {
		for i := uint64(0); i < per; i++ {
			id := uint64(w.Idx)*per + i
			binary.LittleEndian.PutUint64(msg[:], id)
			binary.LittleEndian.PutUint64(msg[56:], id)
			if err := c.send(msg[:]); err != nil {
				return err
			}
		}
		binary.LittleEndian.PutUint64(msg[:], w7End)
		binary.LittleEndian.PutUint64(msg[56:], w7End)
		return c.send(msg[:])
	}
	var cnt, sum, hsum uint64
	last := make([]int64, producers)
	for i := range last {
		last[i] = -1
	}
	for {
		if err := c.recv(msg[:]); err != nil {
			return err
		}
		id, id2 := binary.LittleEndian.Uint64(msg[:]), binary.LittleEndian.Uint64(msg[56:])
		if id != id2 {
			return mismatch("torn message %d/%d", id, id2)
		}
		if id == w7End {
			break
		}
		p := id / per
		if p >= uint64(producers) || int64(id) <= last[p] {
			return mismatch("ORDER: id %d after %v", id, last)
		}
		last[p] = int64(id)
		cnt++
		sum += id
		hsum += mix64(id)
	}
	k := 3 * (w.Idx - producers)
	*w.Result(k), *w.Result(k + 1), *w.Result(k + 2) = cnt, sum, hsum
	return nil
}

// w7N rounds n down to a multiple of the producer count (at least one
// message per producer).
func w7N(n int64, producers int) int64 {
	p := int64(producers)
	return max(n-n%p, p)
}

// checkMPMC checks the consumers' results of mpmc with the given number of
// producers (and as many consumers): every id 0 … n-1 received exactly once.
func checkMPMC(producers int) func(sh *shared, n int64) error {
	return func(sh *shared, n int64) error {
		var cnt, sum, hsum, esum, ehsum uint64
		for c := 0; c < producers; c++ {
			cnt += *sh.result(3 * c)
			sum += *sh.result(3*c + 1)
			hsum += *sh.result(3*c + 2)
		}
		n = w7N(n, producers)
		for i := uint64(0); i < uint64(n); i++ {
			esum += i
			ehsum += mix64(i)
		}
		if cnt != uint64(n) || sum != esum || hsum != ehsum {
			return mismatch("CHECKSUM count=%d/%d sum=%d/%d hsum=%x/%x", cnt, n, sum, esum, hsum, ehsum)
		}
		return nil
	}
}

// w8Warm is the number of unrecorded warm-up round trips of W8.
const w8Warm = 1000

// reqResp is W8: worker 0 (client) sends request i and waits for i+1 on the
// other direction, timing each round trip after w8Warm warm-up rounds;
// worker 1 (server) checks the request and answers. The client stores the
// median and p99 (ns) in result words 0 and 1.
func reqResp(w *Worker, req, rsp msgConn) error {
	var msg [64]byte
	for i := range msg {
		msg[i] = 0x5a
	}
	total := uint64(w.N) + w8Warm
	var lat []int64
	if w.Idx == 0 {
		lat = make([]int64, 0, w.N)
	}
	for i := uint64(0); i < total; i++ {
		if w.Idx == 0 {
			t0 := time.Now()
			binary.LittleEndian.PutUint64(msg[:], i)
			if err := req.send(msg[:]); err != nil {
				return err
			}
			if err := rsp.recv(msg[:]); err != nil {
				return err
			}
			d := time.Since(t0)
			if got := binary.LittleEndian.Uint64(msg[:]); got != i+1 {
				return mismatch("RESPONSE %d to request %d", got, i)
			}
			if i >= w8Warm {
				lat = append(lat, d.Nanoseconds())
			}
		} else {
			if err := req.recv(msg[:]); err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint64(msg[:]); got != i {
				return mismatch("REQUEST %d, expected %d", got, i)
			}
			binary.LittleEndian.PutUint64(msg[:], i+1)
			if err := rsp.send(msg[:]); err != nil {
				return err
			}
		}
	}
	if w.Idx == 0 {
		p50, p99 := latency(lat)
		*w.Result(0), *w.Result(1) = uint64(p50), uint64(p99)
	}
	return nil
}

func checkLatencies(sh *shared, n int64) error {
	if *sh.result(0) == 0 || *sh.result(1) < *sh.result(0) {
		return mismatch("MISSING SAMPLES: median %d ns, p99 %d ns", *sh.result(0), *sh.result(1))
	}
	return nil
}
