//go:build linux

package ringbuf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/futex"
	"github.com/mpipc/mpipc/internal/proctest"
	"golang.org/x/sys/unix"
)

func init() {
	roles["q-tutorial-writer"] = qRoleTutorialWriter
	roles["q-tutorial-reader"] = qRoleTutorialReader
	roles["q-producer"] = qRoleProducer
	roles["q-consumer"] = qRoleConsumer
	roles["q-joinable-worker"] = qRoleJoinableWorker
	roles["q-blocker"] = qRoleBlocker
}

func qChildQueue(path string, check time.Duration) (*Queue, error) {
	mem, err := qChildMap(path)
	if err != nil {
		return nil, err
	}
	return Attach(mem, &Options{CheckInterval: check})
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// qMonoNow returns CLOCK_MONOTONIC in ns, comparable across processes.
// It reads the clock through time.Now's vDSO call, as the C anchors'
// clock_gettime does: unix.ClockGettime is a real syscall, a few hundred
// ns on this VM, which W8 counted twice per round trip. The offset to the
// absolute clock is read once, off by at most one syscall's duration.
func qMonoNow() int64 { return qMonoBase + int64(time.Since(qMonoEpoch)) }

var qMonoEpoch, qMonoBase = func() (time.Time, int64) {
	e := time.Now()
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return e, ts.Nano()
}()

// mix64 is splitmix64's finalizer: an order-independent checksum of ids.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// --- the tutorial example ---

func qRoleTutorialWriter(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	for _, m := range []string{"A", "B", "C"} {
		if err := q.Put(context.Background(), []byte(m)); err != nil {
			return err
		}
	}
	return nil
}

func qRoleTutorialReader(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	for range 3 {
		m, err := q.Get(context.Background())
		if err != nil {
			return err
		}
		fmt.Println(string(m))
	}
	return nil
}

func TestQueueTutorialAcrossProcesses(t *testing.T) {
	mem, path := qTestMap(t, SizeOf(4, 16))
	if _, err := Init(mem, 4, 16, nil); err != nil {
		t.Fatal(err)
	}
	r := proctest.Start(t, "q-tutorial-reader", path) // starts first: it waits
	w := proctest.Start(t, "q-tutorial-writer", path)
	w.WaitOK()
	if out := r.WaitOK(); out != "A\nB\nC\n" {
		t.Fatalf("reader printed %q, want A B C in order", out)
	}
}

// --- conservation ---

// qTestMsg fills buf with message seq of producer p and returns its
// length: 16..len(buf) bytes, a header, a pattern and a CRC of the pattern.
func qTestMsg(buf []byte, p, seq int) int {
	n := 16 + (seq*7919+p*31)%(len(buf)-16+1)
	binary.LittleEndian.PutUint32(buf[0:], uint32(p))
	binary.LittleEndian.PutUint64(buf[4:], uint64(seq))
	for i := 16; i < n; i++ {
		buf[i] = byte(seq + i*p + i)
	}
	binary.LittleEndian.PutUint32(buf[12:], crc32.ChecksumIEEE(buf[16:n]))
	return n
}

func qTestID(p, seq int) uint64 { return uint64(p)<<40 | uint64(seq) }

// q-producer PATH ID N: puts N messages.
func qRoleProducer(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	p, n := atoi(args[1]), atoi(args[2])
	buf := make([]byte, q.MaxMsgSize())
	for seq := 0; seq < n; seq++ {
		m := qTestMsg(buf, p, seq)
		if err := q.Put(context.Background(), buf[:m]); err != nil {
			return fmt.Errorf("put %d: %w", seq, err)
		}
	}
	return nil
}

// q-consumer PATH NPROD: gets until the queue is closed and drained,
// checks each message's length, CRC and per-producer order, and prints
// "count sum" (sum of mix64 of the ids).
func qRoleConsumer(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	nprod := atoi(args[1])
	last := make([]int64, nprod)
	for i := range last {
		last[i] = -1
	}
	buf := make([]byte, q.MaxMsgSize())
	var count, sum uint64
	for {
		n, err := q.GetInto(context.Background(), buf)
		if errors.Is(err, ErrShutdown) {
			break
		}
		if err != nil {
			return err
		}
		if n < 16 {
			return fmt.Errorf("message of %d bytes", n)
		}
		p, seq := int(binary.LittleEndian.Uint32(buf)), int64(binary.LittleEndian.Uint64(buf[4:]))
		if p >= nprod || seq <= last[p] {
			return fmt.Errorf("producer %d: message %d after %d", p, seq, last[p])
		}
		last[p] = seq
		if crc32.ChecksumIEEE(buf[16:n]) != binary.LittleEndian.Uint32(buf[12:]) {
			return fmt.Errorf("producer %d message %d: checksum mismatch", p, seq)
		}
		var want [1 << 12]byte
		if m := qTestMsg(want[:len(buf)], p, int(seq)); m != n {
			return fmt.Errorf("producer %d message %d: %d bytes, want %d", p, seq, n, m)
		}
		count++
		sum += mix64(qTestID(p, int(seq)))
	}
	fmt.Println(count, sum)
	return nil
}

func qConservation(t *testing.T, producers, consumers, capacity, total int) {
	const maxMsg = 200
	mem, path := qTestMap(t, SizeOf(capacity, maxMsg))
	q, err := Init(mem, capacity, maxMsg, nil)
	if err != nil {
		t.Fatal(err)
	}
	per := total / producers
	start := time.Now()
	var cs, ps []*proctest.Child
	for range consumers {
		cs = append(cs, proctest.Start(t, "q-consumer", path, strconv.Itoa(producers)))
	}
	for p := range producers {
		ps = append(ps, proctest.Start(t, "q-producer", path, strconv.Itoa(p), strconv.Itoa(per)))
	}
	proctest.WaitAll(ps)
	q.Shutdown(false)
	var count, sum, wantSum uint64
	for _, out := range proctest.WaitAll(cs) {
		var c, s uint64
		if _, err := fmt.Sscan(out, &c, &s); err != nil {
			t.Fatalf("consumer output %q: %v", out, err)
		}
		count += c
		sum += s
	}
	for p := range producers {
		for seq := range per {
			wantSum += mix64(qTestID(p, seq))
		}
	}
	t.Logf("%d+%d processes, capacity %d: %d messages in %v", producers, consumers, capacity, count, time.Since(start))
	if count != uint64(producers*per) || sum != wantSum {
		t.Fatalf("received %d messages (checksum %#x), want %d (%#x)", count, sum, producers*per, wantSum)
	}
}

func qTotal(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

func TestQueueConservation2x2(t *testing.T)  { qConservation(t, 2, 2, 1024, qTotal(1_000_000)) }
func TestQueueConservation4x4(t *testing.T)  { qConservation(t, 4, 4, 1024, qTotal(1_000_000)) }
func TestQueueConservationCap2(t *testing.T) { qConservation(t, 2, 2, 2, qTotal(1_000_000)) }

// --- JoinableQueue tutorial ---

// q-joinable-worker PATH: takes tasks until "stop"; for each it sleeps a
// little, counts it done in the shared counter at the end of the queue
// memory, then calls TaskDone.
func qRoleJoinableWorker(args []string) error {
	mem, err := qChildMap(args[0])
	if err != nil {
		return err
	}
	size := SizeOfJoinable(16, 16)
	j, err := AttachJoinable(mem[:size], nil)
	if err != nil {
		return err
	}
	done := u32at(mem, size)
	for {
		m, err := j.Get(context.Background())
		if err != nil {
			return err
		}
		if string(m) != "stop" {
			time.Sleep(20 * time.Millisecond)
		}
		atomicAddU32(done, 1)
		if err := j.TaskDone(); err != nil {
			return err
		}
		if string(m) == "stop" {
			return nil
		}
	}
}

func TestJoinableTutorialAcrossProcesses(t *testing.T) {
	size := SizeOfJoinable(16, 16)
	mem, path := qTestMap(t, size+64)
	j, err := InitJoinable(mem[:size], 16, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := u32at(mem, size)
	var ws []*proctest.Child
	for range 4 {
		ws = append(ws, proctest.Start(t, "q-joinable-worker", path))
	}
	for i := range 10 {
		if err := j.Put(context.Background(), []byte(fmt.Sprint("task", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		j.Put(context.Background(), []byte("stop"))
	}
	if err := j.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := atomicLoadU32(done); n != 14 {
		t.Fatalf("Join returned after %d of 14 tasks were done", n)
	}
	proctest.WaitAll(ws)
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("extra TaskDone: %v, want ErrTaskDone", err)
	}
	if st := j.State(); st.Unfinished != 0 || st.Taken != 0 {
		t.Fatalf("after the extra TaskDone: %+v", st)
	}
}

// --- Shutdown wakes every process ---

// q-blocker PATH get|put: blocks in Get (or Put) until Shutdown, then prints
// the CLOCK_MONOTONIC time it woke, in ns.
func qRoleBlocker(args []string) error {
	q, err := qChildQueue(args[0], 0)
	if err != nil {
		return err
	}
	if args[1] == "get" {
		_, err = q.Get(context.Background())
	} else {
		err = q.Put(context.Background(), []byte("x"))
	}
	now := qMonoNow()
	if !errors.Is(err, ErrShutdown) {
		return fmt.Errorf("%s returned %v, want ErrShutdown", args[1], err)
	}
	fmt.Println(now)
	return nil
}

func TestQueueShutdownWakesProcesses(t *testing.T) {
	trials := 5
	var lat []time.Duration
	for range trials {
		empty, pe := qTestMap(t, SizeOf(2, 8))
		full, pf := qTestMap(t, SizeOf(2, 8))
		qe, _ := Init(empty, 2, 8, nil)
		qf, _ := Init(full, 2, 8, nil)
		qf.TryPut(nil)
		qf.TryPut(nil)
		var cs []*proctest.Child
		for range 2 {
			cs = append(cs, proctest.Start(t, "q-blocker", pe, "get"), proctest.Start(t, "q-blocker", pf, "put"))
		}
		deadline := time.Now().Add(30 * time.Second)
		for qe.State().GetWaiters < 2 || qf.State().PutWaiters < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("children did not block: %+v %+v", qe.State(), qf.State())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let them reach the kernel
		t0 := qMonoNow()
		qe.Shutdown(false)
		qf.Shutdown(false)
		for _, out := range proctest.WaitAll(cs) {
			ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Duration(ns-t0))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	med := lat[len(lat)/2]
	t.Logf("Shutdown to wake across processes: median %v, max %v over %d sleepers", med, lat[len(lat)-1], len(lat))
	if med > 10*time.Millisecond {
		t.Fatalf("median wake latency after Shutdown %v, want <= 10ms (all: %v)", med, lat)
	}
}

// TestQueueDeadSleeperCostsOneWake: a getter killed while asleep leaves
// its registration behind. The next Put's notification consumes it (one
// wake syscall); the Puts after it make none.
func TestQueueDeadSleeperCostsOneWake(t *testing.T) {
	mem, path := qTestMap(t, SizeOf(4, 8))
	q, err := Init(mem, 4, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.Start(t, "q-blocker", path, "get")
	deadline := time.Now().Add(30 * time.Second)
	for q.State().GetWaiters < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("child did not block: %+v", q.State())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let it reach the kernel
	c.Kill()
	<-c.Done()
	if st := q.State(); st.GetWaiters != 1 {
		t.Fatalf("after the kill: %+v, want the dead getter still registered", st)
	}
	var wakes atomic.Int32
	qFutexWake = func(addr *uint32, n int) int { wakes.Add(1); return futex.Wake(addr, n) }
	t.Cleanup(func() { qFutexWake = futex.Wake })
	buf := make([]byte, 8)
	for i := range 100 {
		if err := q.TryPut([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := q.TryGetInto(buf); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if n := wakes.Load(); n != 1 {
		t.Errorf("%d wake syscalls for 100 Puts after a sleeper died, want 1", n)
	}
	if st := q.State(); st.GetWaiters != 0 {
		t.Errorf("registrations left: %+v", st)
	}
}
