//go:build linux

package faults_test

// Liveness across containers: the processes of one test live in different
// pid namespaces (as two containers of one pod that share a memory volume
// do), or without /proc, or stopped. Every object must tell a live process
// from a dead one all the same, through the segment's process registry.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/shm"
)

// nsWrap runs a child as pid 1 of a new pid namespace with its own /proc;
// SIGKILL to the wrapper kills the child.
var nsWrap = []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}

// noProcWrap runs a child in a mount namespace where /proc is unmounted.
var noProcWrap = []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `umount -l /proc && exec "$0" "$@"`}

// requireWrap skips the test, saying why, when the kernel or the sandbox
// refuses the namespace (unshare needs root or user namespaces).
func requireWrap(t *testing.T, wrap []string) {
	t.Helper()
	args := append(append([]string{}, wrap[1:]...), "true")
	if out, err := exec.Command(wrap[0], args...).CombinedOutput(); err != nil {
		t.Skipf("cannot make the namespace here (%s: %v: %s): skipped, not passed", strings.Join(wrap, " "), err, out)
	}
}

const nsCheck = 20 * time.Millisecond

func init() {
	addRole("ns-lock-hold", roleNsLockHold)
	addRole("ns-lock-wait", roleNsLockWait)
	addRole("ns-queue-get", roleNsQueueGet)
	addRole("ns-barrier", roleNsBarrier)
	addRole("ns-cond-wait", roleNsCondWait)
	addRole("ns-pipe-send", roleNsPipeSend)
}

// roleNsLockHold acquires lock "mu", says "held <pid>" with its pid as it
// sees itself, and holds it for args[1] (then releases and says
// "released"), or until killed.
func roleNsLockHold(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	mu, err := lock.Open(seg, "mu", &lock.Options{CheckInterval: nsCheck})
	if err != nil {
		return err
	}
	if err := mu.Acquire(context.Background()); err != nil {
		return err
	}
	fmt.Println("held", os.Getpid())
	d, _ := time.ParseDuration(args[1])
	time.Sleep(d)
	if err := mu.Release(); err != nil {
		return err
	}
	fmt.Println("released")
	return nil
}

// roleNsLockWait runs without /proc: it says whether /proc is there, then
// tries lock "mu" for 300 ms (held by a live process: must time out), says
// "timeout", then waits up to 10 s and says how the lock came.
func roleNsLockWait(args []string) error {
	_, perr := os.Stat("/proc/self")
	fmt.Println("proc", perr == nil)
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	mu, err := lock.Open(seg, "mu", &lock.Options{CheckInterval: nsCheck})
	if err != nil {
		return err
	}
	ok, err := mu.AcquireTimeout(300 * time.Millisecond)
	if ok || err != nil {
		return fmt.Errorf("took a live holder's lock: %v %v", ok, err)
	}
	fmt.Println("timeout")
	ok, err = mu.AcquireTimeout(10 * time.Second)
	fmt.Println("acquired", ok, errors.Is(err, lock.ErrOwnerDead))
	return nil
}

func newNsSegment(t *testing.T) (*shm.Segment, string) {
	t.Helper()
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg, seg.Path()
}

// The reproduction: a holder in another pid namespace (pid 1
// there) is never taken over while it lives, and is recognised as dead
// within a check interval once SIGKILLed.
func TestContainerLockHolderInOtherPidNamespace(t *testing.T) {
	requireWrap(t, nsWrap)
	seg, path := newNsSegment(t)
	mu, err := lock.Create(seg, "mu", &lock.Options{CheckInterval: nsCheck})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.StartOpts(t, "ns-lock-hold", proctest.Options{Args: []string{path, "1h"}, Wrap: nsWrap})
	if line := c.Line(0); line != "held 1" {
		t.Fatalf("holder said %q, want \"held 1\" (pid 1 of its own namespace)", line)
	}
	// Many check intervals: a pid-based check would have stolen it by now.
	ok, err := mu.AcquireTimeout(40 * nsCheck)
	if ok || err != nil {
		t.Fatalf("AcquireTimeout while the holder lives: %v, %v", ok, err)
	}
	if st := mu.State(); !st.Held || !st.HolderAlive || st.HolderPid != 1 {
		t.Fatalf("state %+v, want held by a live pid 1", st)
	}
	c.Kill()
	<-c.Done()
	start := time.Now()
	ok, err = mu.AcquireTimeout(5 * time.Second)
	if !ok || !errors.Is(err, lock.ErrOwnerDead) {
		t.Fatalf("after the holder died: %v, %v; want ErrOwnerDead", ok, err)
	}
	if d := time.Since(start); d > 10*nsCheck+time.Second/2 {
		t.Fatalf("took %v to notice the dead holder (check interval %v)", d, nsCheck)
	}
	mu.Consistent()
	mu.Release()
}

// A waiter that has no /proc at all still detects a SIGKILLed holder.
func TestContainerWaiterWithoutProc(t *testing.T) {
	requireWrap(t, noProcWrap)
	seg, path := newNsSegment(t)
	if _, err := lock.Create(seg, "mu", nil); err != nil {
		t.Fatal(err)
	}
	h := proctest.StartOpts(t, "ns-lock-hold", proctest.Options{Args: []string{path, "1h"}})
	if line := h.Line(0); !strings.HasPrefix(line, "held ") {
		t.Fatalf("holder said %q", line)
	}
	w := proctest.StartOpts(t, "ns-lock-wait", proctest.Options{Args: []string{path}, Wrap: noProcWrap})
	if line := w.Line(0); line != "proc false" {
		t.Fatalf("waiter said %q, want \"proc false\"", line)
	}
	w.Expect("timeout", 0)
	h.Kill()
	if line := w.Line(0); line != "acquired true true" {
		t.Fatalf("waiter without /proc said %q, want the lock with ErrOwnerDead", line)
	}
	w.WaitOK()
}

// A holder stopped with SIGSTOP for longer than ten check intervals is
// alive: never taken over; after SIGCONT it releases normally.
func TestContainerStoppedHolderIsAlive(t *testing.T) {
	seg, path := newNsSegment(t)
	mu, err := lock.Create(seg, "mu", &lock.Options{CheckInterval: nsCheck})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.StartOpts(t, "ns-lock-hold", proctest.Options{Args: []string{path, "200ms"}})
	if line := c.Line(0); !strings.HasPrefix(line, "held ") {
		t.Fatalf("holder said %q", line)
	}
	c.Signal(syscall.SIGSTOP)
	ok, err := mu.AcquireTimeout(20 * nsCheck)
	if ok || err != nil {
		t.Fatalf("AcquireTimeout on a stopped holder: %v, %v", ok, err)
	}
	c.Signal(syscall.SIGCONT)
	ok, err = mu.AcquireTimeout(5 * time.Second)
	if !ok || err != nil {
		t.Fatalf("after SIGCONT: %v, %v; want a normal acquire", ok, err)
	}
	c.Expect("released", 0)
	mu.Release()
	c.WaitOK()
}

const nsMsgs = 100000

// roleNsQueueGet consumes from queue "q" until it gets a message of
// length 0, counting each index in the "seen" array, with a short check
// interval so that claims of the other consumers are checked often.
func roleNsQueueGet(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	q, err := ringbuf.Open(seg, "q", &ringbuf.Options{CheckInterval: time.Millisecond})
	if err != nil {
		return err
	}
	seen, err := seg.Lookup(shm.Spec{Name: "seen", Kind: shm.KindBytes, KindVersion: 1})
	if err != nil {
		return err
	}
	buf := make([]byte, 16)
	n := 0
	for {
		k, err := q.GetInto(context.Background(), buf)
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		i := binary.LittleEndian.Uint32(buf)
		atomic.AddUint32((*uint32)(unsafe.Pointer(&seen[4*int(i)])), 1)
		n++
	}
	fmt.Println("got", n)
	return nil
}

// A consumer in another pid namespace is never taken for dead: 100,000
// messages through a queue consumed in both namespaces, each exactly once.
func TestContainerQueueConsumers(t *testing.T) {
	requireWrap(t, nsWrap)
	seg, path := newNsSegment(t)
	q, err := ringbuf.Create(seg, "q", 64, 16, &ringbuf.Options{CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	seen, err := seg.Alloc(shm.Spec{Name: "seen", Kind: shm.KindBytes, KindVersion: 1, Size: 4 * nsMsgs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := proctest.StartOpts(t, "ns-queue-get", proctest.Options{Args: []string{path}, Wrap: nsWrap})
	out := proctest.StartOpts(t, "ns-queue-get", proctest.Options{Args: []string{path}})
	msg := make([]byte, 16)
	for i := range nsMsgs {
		binary.LittleEndian.PutUint32(msg, uint32(i))
		if err := q.Put(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := q.Put(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, c := range []*proctest.Child{in, out} {
		f := strings.Fields(c.Line(0))
		n, _ := strconv.Atoi(f[len(f)-1])
		total += n
		c.WaitOK()
	}
	bad := 0
	for i := range nsMsgs {
		if v := atomic.LoadUint32((*uint32)(unsafe.Pointer(&seen[4*i]))); v != 1 {
			if bad++; bad < 5 {
				t.Errorf("message %d received %d times", i, v)
			}
		}
	}
	if total != nsMsgs || bad != 0 {
		t.Fatalf("%d messages received, %d wrong counts; want %d each once", total, bad, nsMsgs)
	}
}

// roleNsBarrier waits args[1] rounds at barrier "b" and says "done".
func roleNsBarrier(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	b, err := barrier.Open(seg, "b", &barrier.Options{CheckInterval: time.Millisecond})
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(args[1])
	for range n {
		if _, err := b.WaitTimeout(10 * time.Second); err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // let the other party sleep and check
	}
	fmt.Println("done")
	return nil
}

// A barrier party in another pid namespace does not break the barrier.
func TestContainerBarrierParty(t *testing.T) {
	requireWrap(t, nsWrap)
	seg, path := newNsSegment(t)
	b, err := barrier.Create(seg, "b", 2, &barrier.Options{CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 200
	c := proctest.StartOpts(t, "ns-barrier", proctest.Options{Args: []string{path, strconv.Itoa(rounds)}, Wrap: nsWrap})
	for r := range rounds {
		if _, err := b.WaitTimeout(10 * time.Second); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}
	c.Expect("done", 0)
	c.WaitOK()
}

// roleNsCondWait waits on condition "c" (with its own lock) for 10 s and
// says whether it was notified.
func roleNsCondWait(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	c, err := condition.Open(seg, "c", &condition.Options{CheckInterval: time.Millisecond})
	if err != nil {
		return err
	}
	if err := c.Acquire(context.Background()); err != nil {
		return err
	}
	fmt.Println("waiting")
	ok, err := c.WaitTimeout(10 * time.Second)
	c.Release()
	fmt.Println("notified", ok, err)
	return nil
}

// A condition waiter in another pid namespace keeps its place: another
// waiter that checks for dead waiters every millisecond does not withdraw
// it, and the Notify reaches it.
func TestContainerConditionWaiter(t *testing.T) {
	requireWrap(t, nsWrap)
	seg, path := newNsSegment(t)
	c, err := condition.Create(seg, "c", "", &condition.Options{CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch := proctest.StartOpts(t, "ns-cond-wait", proctest.Options{Args: []string{path}, Wrap: nsWrap})
	ch.Expect("waiting", 0)
	for c.State().Waiters != 1 {
		time.Sleep(time.Millisecond)
	}
	// A local waiter, younger, sleeps through many checks of the others.
	var wg sync.WaitGroup
	var local bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Acquire(context.Background())
		local, _ = c.WaitTimeout(600 * time.Millisecond)
		c.Release()
	}()
	time.Sleep(300 * time.Millisecond)
	c.Acquire(context.Background())
	c.Notify(1)
	c.Release()
	if line := ch.Line(0); line != "notified true <nil>" {
		t.Fatalf("waiter in the other namespace said %q", line)
	}
	wg.Wait()
	if local {
		t.Fatal("the Notify went to the younger, local waiter")
	}
	ch.WaitOK()
}

// roleNsPipeSend opens end 1 of pipe "p", sends args[1] messages, says
// "sent" and stays alive until killed.
func roleNsPipeSend(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	c, err := ringbuf.OpenPipe(seg, "p", 1, &ringbuf.PipeOptions{CheckInterval: time.Millisecond})
	if err != nil {
		fmt.Println("open", err)
		return nil
	}
	n, _ := strconv.Atoi(args[1])
	for i := range n {
		if err := c.Send(context.Background(), []byte(strconv.Itoa(i))); err != nil {
			return err
		}
	}
	fmt.Println("sent")
	time.Sleep(time.Hour)
	return nil
}

// A pipe peer in another pid namespace is alive while it lives and dead
// once killed; its end can then be opened by a new process.
func TestContainerPipePeer(t *testing.T) {
	requireWrap(t, nsWrap)
	seg, path := newNsSegment(t)
	p, err := ringbuf.CreatePipe(seg, "p", &ringbuf.PipeOptions{CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := proctest.StartOpts(t, "ns-pipe-send", proctest.Options{Args: []string{path, "1000"}, Wrap: nsWrap})
	buf := make([]byte, 64)
	for i := range 1000 {
		n, err := p.Recv(context.Background(), buf)
		if err != nil || string(buf[:n]) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q, %v", i, buf[:n], err)
		}
	}
	c.Expect("sent", 0)
	// Many check intervals with nothing to receive: the peer lives.
	if _, err := p.RecvTimeout(buf, 200*time.Millisecond); err == nil || errors.Is(err, io.EOF) || errors.Is(err, ringbuf.ErrPeerGone) {
		t.Fatalf("RecvTimeout with a live, quiet peer: %v; want a timeout", err)
	}
	c.Kill()
	<-c.Done()
	if _, err := p.RecvTimeout(buf, 5*time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after the peer was killed: %v, want io.EOF", err)
	}
	// The dead process's end is free for a new one.
	c2 := proctest.StartOpts(t, "ns-pipe-send", proctest.Options{Args: []string{path, "1"}})
	if line := c2.Line(0); line != "sent" {
		t.Fatalf("a new process opening the dead end: %q", line)
	}
	n, err := p.RecvTimeout(buf, 5*time.Second)
	if err != nil || string(buf[:n]) != "0" {
		t.Fatalf("message from the new peer: %q, %v", buf[:n], err)
	}
	c2.Kill()
}
