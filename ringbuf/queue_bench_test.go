//go:build linux

package ringbuf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
)

func init() {
	roles["q-bench"] = qRoleBench
}

// BenchmarkQueueUncontended is one goroutine putting and getting a 64-byte
// message: the fast path, no syscall, no allocation.
func BenchmarkQueueUncontended(b *testing.B) {
	q := qNew(b, 1024, 64, nil)
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := q.TryPut(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := q.TryGetInto(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueueUncontendedCap1000 is BenchmarkQueueUncontended with a
// capacity that is not a power of two: each Put also tests the limit
// against the consumers' head hint.
func BenchmarkQueueUncontendedCap1000(b *testing.B) {
	q := qNew(b, 1000, 64, nil)
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := q.TryPut(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := q.TryGetInto(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChanUncontended is the floor: a buffered Go channel of 64-byte
// arrays, send and receive in one goroutine.
func BenchmarkChanUncontended(b *testing.B) {
	c := make(chan [64]byte, 1024)
	var m [64]byte
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		c <- m
		m = <-c
	}
}

// BenchmarkQueueTypedUncontended is the typed queue's fast path.
func BenchmarkQueueTypedUncontended(b *testing.B) {
	type rec struct{ A, B, C, D int64 }
	mem := qAligned(SizeOfTyped[rec](1024))
	q, _ := InitTyped[rec](mem, 1024, nil)
	b.ReportAllocs()
	for b.Loop() {
		q.TryPut(rec{1, 2, 3, 4})
		q.TryGet()
	}
}

// BenchmarkQueueSPSCGoroutines and BenchmarkChanSPSCGoroutines: one
// producer and one consumer goroutine, 64-byte messages.
func BenchmarkQueueSPSCGoroutines(b *testing.B) {
	q := qNew(b, 1024, 64, nil)
	b.ReportAllocs()
	b.SetBytes(64)
	done := make(chan struct{})
	n := b.N
	go func() {
		buf := make([]byte, 64)
		for range n {
			q.GetInto(context.Background(), buf)
		}
		close(done)
	}()
	msg := make([]byte, 64)
	b.ResetTimer()
	for range n {
		q.Put(context.Background(), msg)
	}
	<-done
}

func BenchmarkChanSPSCGoroutines(b *testing.B) {
	c := make(chan [64]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(64)
	done := make(chan struct{})
	n := b.N
	go func() {
		for range n {
			<-c
		}
		close(done)
	}()
	var m [64]byte
	b.ResetTimer()
	for range n {
		c <- m
	}
	<-done
}

// Cross-process workloads, with the protocol of the anchors (shared/anchors
// README): the workers signal ready, are released together, stamp
// CLOCK_MONOTONIC before and after their loops, and elapsed is max(end) -
// min(start). The harness area follows the queues in the shared file.
const (
	qbReady = 0 // uint32 workers ready
	qbGo    = 4 // uint32 set to 1 to release them
	qbT0    = 64
	qbT1    = 128
	qbCount = 192 // per consumer: count, sum
	qbSize  = 320
)

type qbFile struct {
	mem    []byte
	path   string
	queues []int // offsets of the queues
	harn   int
}

func qbSetup(b *testing.B, nq, capacity, msg int) *qbFile {
	qs := (SizeOf(capacity, msg) + 63) &^ 63
	mem, path := qTestMap(b, nq*qs+qbSize)
	f := &qbFile{mem: mem, path: path, harn: nq * qs}
	for i := range nq {
		if _, err := Init(mem[i*qs:(i+1)*qs], capacity, msg, nil); err != nil {
			b.Fatal(err)
		}
		f.queues = append(f.queues, i*qs)
	}
	return f
}

// run starts np workers of workload w with n and waits for them; it
// returns the elapsed time and their stdout.
func (f *qbFile) run(b *testing.B, w string, np, n, size int) (time.Duration, []string) {
	var cs []*proctest.Child
	for i := range np {
		cs = append(cs, proctest.Start(b, "q-bench", f.path, w, strconv.Itoa(i), strconv.Itoa(n), strconv.Itoa(size),
			strconv.Itoa(len(f.queues)), strconv.Itoa(f.harn)))
	}
	ready := u32at(f.mem, f.harn+qbReady)
	for atomic.LoadUint32(ready) != uint32(np) {
		time.Sleep(100 * time.Microsecond)
	}
	b.ResetTimer()
	atomic.StoreUint32(u32at(f.mem, f.harn+qbGo), 1)
	futex.WakeAll(u32at(f.mem, f.harn+qbGo))
	outs := proctest.WaitAll(cs)
	b.StopTimer()
	t0, t1 := int64(1<<62), int64(0)
	for i := range np {
		t0 = min(t0, int64(*u64at(f.mem, f.harn+qbT0+8*i)))
		t1 = max(t1, int64(*u64at(f.mem, f.harn+qbT1+8*i)))
	}
	return time.Duration(t1 - t0), outs
}

// q-bench PATH WORKLOAD IDX N SIZE NQUEUES HARNESS
func qRoleBench(args []string) error {
	mem, err := qChildMap(args[0])
	if err != nil {
		return err
	}
	w, idx, n, size, nq, harn := args[1], atoi(args[2]), atoi(args[3]), atoi(args[4]), atoi(args[5]), atoi(args[6])
	qs := harn / nq
	var qs2 []*Queue
	for i := range nq {
		q, err := Attach(mem[i*qs:(i+1)*qs], nil)
		if err != nil {
			return err
		}
		qs2 = append(qs2, q)
	}
	atomic.AddUint32(u32at(mem, harn+qbReady), 1)
	gow := u32at(mem, harn+qbGo)
	for atomic.LoadUint32(gow) == 0 {
		futex.Wait(context.Background(), gow, 0, time.Time{})
	}
	*u64at(mem, harn+qbT0+8*idx) = uint64(qMonoNow())
	defer func() { *u64at(mem, harn+qbT1+8*idx) = uint64(qMonoNow()) }()
	buf := make([]byte, size)
	q := qs2[0]
	switch w {
	case "w6": // idx 0 produces, idx 1 consumes; every message carries its index
		if idx == 0 {
			for i := range n {
				binary.LittleEndian.PutUint64(buf, uint64(i))
				binary.LittleEndian.PutUint64(buf[size-8:], ^uint64(i))
				if err := q.Put(context.Background(), buf); err != nil {
					return err
				}
			}
			return nil
		}
		for i := range n {
			m, err := q.GetInto(context.Background(), buf)
			if err != nil {
				return err
			}
			if m != size || binary.LittleEndian.Uint64(buf) != uint64(i) || binary.LittleEndian.Uint64(buf[size-8:]) != ^uint64(i) {
				return fmt.Errorf("message %d: order or content mismatch", i)
			}
		}
	case "w7": // idx 0,1 produce n/2 each then an end marker; 2,3 consume
		per := n / 2
		if idx < 2 {
			for i := range per {
				id := uint64(idx*per + i)
				binary.LittleEndian.PutUint64(buf, id)
				binary.LittleEndian.PutUint64(buf[56:], id)
				if err := q.Put(context.Background(), buf); err != nil {
					return err
				}
			}
			binary.LittleEndian.PutUint64(buf, ^uint64(0))
			binary.LittleEndian.PutUint64(buf[56:], ^uint64(0))
			return q.Put(context.Background(), buf)
		}
		var cnt, sum uint64
		last := [2]int64{-1, -1}
		for {
			if _, err := q.GetInto(context.Background(), buf); err != nil {
				return err
			}
			id, id2 := binary.LittleEndian.Uint64(buf), binary.LittleEndian.Uint64(buf[56:])
			if id != id2 {
				return errors.New("torn message")
			}
			if id == ^uint64(0) {
				break
			}
			p := int(id / uint64(per))
			if p > 1 || int64(id) <= last[p] {
				return fmt.Errorf("order mismatch id %d", id)
			}
			last[p] = int64(id)
			cnt++
			sum += mix64(id)
		}
		*u64at(mem, harn+qbCount+16*(idx-2)) = cnt
		*u64at(mem, harn+qbCount+16*(idx-2)+8) = sum
	case "w8": // idx 0 is the client, idx 1 the server; queue 0 requests, 1 responses
		const warm = 1000
		req, rsp := qs2[0], qs2[1]
		var lat []int64
		if idx == 0 {
			lat = make([]int64, 0, n)
		}
		for i := range n + warm {
			if idx == 0 {
				t0 := qMonoNow()
				binary.LittleEndian.PutUint64(buf, uint64(i))
				if err := req.Put(context.Background(), buf); err != nil {
					return err
				}
				if _, err := rsp.GetInto(context.Background(), buf); err != nil {
					return err
				}
				t1 := qMonoNow()
				if binary.LittleEndian.Uint64(buf) != uint64(i)+1 {
					return errors.New("response mismatch")
				}
				if i >= warm {
					lat = append(lat, t1-t0)
				}
				continue
			}
			if _, err := req.GetInto(context.Background(), buf); err != nil {
				return err
			}
			if binary.LittleEndian.Uint64(buf) != uint64(i) {
				return errors.New("request mismatch")
			}
			binary.LittleEndian.PutUint64(buf, uint64(i)+1)
			if err := rsp.Put(context.Background(), buf); err != nil {
				return err
			}
		}
		if idx == 0 {
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			fmt.Println(lat[len(lat)/2], lat[len(lat)*99/100])
		}
	default:
		return fmt.Errorf("unknown workload %q", w)
	}
	return nil
}

func qbW6(b *testing.B, size, capacity int) {
	f := qbSetup(b, 1, capacity, size)
	b.ReportAllocs()
	el, _ := f.run(b, "w6", 2, b.N, size)
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)*float64(size)/el.Seconds()/1e6, "MB/s")
}

// BenchmarkQueueW6_64B is W6: one producer and one consumer process,
// 64-byte messages, 1024 slots (as c-mpmc-ring).
func BenchmarkQueueW6_64B(b *testing.B) { qbW6(b, 64, 1024) }

// BenchmarkQueueW6_64B_Cap1000 is W6 with a capacity of 1000: the cost
// of the limit test across processes (the producer reads the consumer's
// head hint line).
func BenchmarkQueueW6_64B_Cap1000(b *testing.B) { qbW6(b, 64, 1000) }

// BenchmarkQueueW6_4KiB is W6-4KiB: 4096-byte messages, 256 slots.
func BenchmarkQueueW6_4KiB(b *testing.B) { qbW6(b, 4096, 256) }

// BenchmarkQueueW7 is W7: 2 producer and 2 consumer processes, 64-byte
// messages, 1024 slots; every message checked exactly once.
func BenchmarkQueueW7(b *testing.B) {
	f := qbSetup(b, 1, 1024, 64)
	b.ReportAllocs()
	n := max(b.N-b.N%2, 2)
	el, _ := f.run(b, "w7", 4, n, 64)
	var cnt, sum, want uint64
	for c := range 2 {
		cnt += *u64at(f.mem, f.harn+qbCount+16*c)
		sum += *u64at(f.mem, f.harn+qbCount+16*c+8)
	}
	for i := range n {
		want += mix64(uint64(i))
	}
	if cnt != uint64(n) || sum != want {
		b.Fatalf("received %d messages (sum %#x), want %d (%#x)", cnt, sum, n, want)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
}

// BenchmarkQueueW8 is W8: request/response ping-pong over two queues,
// 64-byte messages; b.N round trips after 1000 warm-up rounds.
func BenchmarkQueueW8(b *testing.B) {
	f := qbSetup(b, 2, 1024, 64)
	b.ReportAllocs()
	_, outs := f.run(b, "w8", 2, b.N, 64)
	var p50, p99 int64
	if _, err := fmt.Sscan(strings.TrimSpace(outs[0]), &p50, &p99); err != nil {
		b.Fatalf("client output %q: %v", outs[0], err)
	}
	b.ReportMetric(float64(p50)/1e3, "p50_us")
	b.ReportMetric(float64(p99)/1e3, "p99_us")
}
