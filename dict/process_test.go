//go:build linux

package dict

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mpipc/mpipc/internal/proc"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
	"github.com/mpipc/mpipc/shm"
)

// counter is a value that checks itself: Sum is a function of the key and
// N, so a torn or never-written value fails the check.
type counter struct {
	N   uint64
	Sum uint64
	Pad [2]uint32
}

func mkCounter(k int32, n uint64) counter {
	x := uint64(k)<<40 ^ n
	return counter{N: n, Sum: x*m1 ^ x>>17, Pad: [2]uint32{uint32(n), ^uint32(n)}}
}

func (c counter) ok(k int32) bool { return c == mkCounter(k, c.N) }

const stopKey = -1

// roleUpdater: SEG KEYS ROUNDS — Update-increments every key of
// 0..KEYS-1 ROUNDS times, in a scattered order.
func roleUpdater(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	d, err := Open[int32, counter](seg, "counts", nil)
	if err != nil {
		return err
	}
	keys, _ := strconv.Atoi(args[1])
	rounds, _ := strconv.Atoi(args[2])
	proctest.SignalReady()
	for r := 0; r < rounds; r++ {
		for i := 0; i < keys; i++ {
			k := int32((i*7919 + r) % keys)
			_, _, err := d.Update(k, func(old counter, ok bool) (counter, bool) {
				if ok && !old.ok(k) {
					panic(fmt.Sprintf("key %d holds a torn value %+v", k, old))
				}
				return mkCounter(k, old.N+1), true
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// roleGetter: SEG KEYS — Gets keys until stopKey appears, checking every
// value's checksum and that no key's count goes back; prints the number
// of Gets.
func roleGetter(args []string) error {
	seg, err := shm.Open(args[0], nil)
	if err != nil {
		return err
	}
	defer seg.Close()
	d, err := Open[int32, counter](seg, "counts", nil)
	if err != nil {
		return err
	}
	keys, _ := strconv.Atoi(args[1])
	last := make([]uint64, keys)
	proctest.SignalReady()
	gets := 0
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if _, ok := d.Get(stopKey); ok {
				break
			}
		}
		k := int32(i % keys)
		v, ok := d.Get(k)
		gets++
		if !ok {
			if last[k] != 0 {
				return fmt.Errorf("key %d vanished after count %d", k, last[k])
			}
			continue
		}
		if !v.ok(k) {
			return fmt.Errorf("key %d: a value never written: %+v", k, v)
		}
		if v.N < last[k] {
			return fmt.Errorf("key %d went back from %d to %d", k, last[k], v.N)
		}
		last[k] = v.N
	}
	fmt.Println(gets)
	return nil
}

// TestProcessUpdates: 4 processes Update-increment 1,000 keys while a
// fifth Gets them: every count exact, every value read one that was
// written.
func TestProcessUpdates(t *testing.T) {
	const keys, procs = 1000, 4
	rounds := 50 // 200,000 increments
	switch {
	case *longForm:
		rounds = 250 // 1,000,000
	case testing.Short():
		rounds = 10
	}
	name := proctest.TempName(t)
	seg, err := shm.Create(name, &shm.Options{Size: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	d, err := Create[int32, counter](seg, "counts", keys+1, nil)
	if err != nil {
		t.Fatal(err)
	}
	getter := proctest.Start(t, "getter", name, strconv.Itoa(keys))
	getter.Expect(proctest.Ready, 0)
	var cs []*proctest.Child
	for range procs {
		c := proctest.Start(t, "updater", name, strconv.Itoa(keys), strconv.Itoa(rounds))
		cs = append(cs, c)
	}
	t0 := time.Now()
	proctest.WaitAll(cs)
	el := time.Since(t0)
	if err := d.Set(stopKey, counter{}); err != nil {
		t.Fatal(err)
	}
	out := strings.Fields(getter.WaitOK())
	gets := out[len(out)-1]
	for k := int32(0); k < keys; k++ {
		v, ok := d.Get(k)
		if !ok || !v.ok(k) || v.N != procs*uint64(rounds) {
			t.Errorf("key %d: %+v %v, want count %d", k, v, ok, procs*rounds)
		}
	}
	if d.Len() != keys+1 {
		t.Errorf("Len %d", d.Len())
	}
	t.Logf("%d Update increments by %d processes in %v (incl. start-up); concurrent Gets: %s",
		procs*rounds*keys, procs, el.Round(time.Millisecond), gets)
}

// The kill test's shared file: a journal, then the dict at offset
// journalBytes.
const (
	churnKeys    = 60
	journalBytes = 4096
)

// churnOp is op seq of the churner, a function of seq alone so that the
// parent knows the op in flight: its key, and whether it deletes.
func churnOp(seq uint64) (k uint16, del bool) {
	h := seq * m1
	h ^= h >> 29
	return uint16(h % churnKeys), h>>40%4 == 0
}

func churnVal(k uint16, seq uint64) [3]uint64 {
	return [3]uint64{seq, uint64(k) ^ seq*m2, ^seq}
}

func churnValid(k uint16, v [3]uint64) bool { return v == churnVal(k, v[0]) }

// churnDict attaches to the dict in the shared file at path, mapped at
// mem, naming the registry the test's processes share.
func churnDict(path string, mem []byte) (*Dict[uint16, [3]uint64], error) {
	reg, err := regtest.Open(path)
	if err != nil {
		return nil, err
	}
	return Attach[uint16, [3]uint64](mem[journalBytes:], &Options{CheckInterval: 5 * time.Millisecond, Registry: reg})
}

// roleChurner: PATH START SLACK — Sets and Deletes from op START on, forever,
// recording each op after it returns: journal[k] is the last op on k,
// journal[churnKeys] the last op.
func roleChurner(args []string) error {
	mem, err := proctest.MapFile(args[0])
	if err != nil {
		return err
	}
	journal := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), churnKeys+1)
	seq, _ := strconv.ParseUint(args[1], 10, 64)
	slack, _ := strconv.ParseUint(args[2], 10, 64)
	rebuildAt = slack
	d, err := churnDict(args[0], mem)
	if err != nil {
		return err
	}
	proctest.SignalReady()
	for ; ; seq++ {
		k, del := churnOp(seq)
		if del {
			_, err = d.Delete(k)
		} else {
			err = d.Set(k, churnVal(k, seq))
		}
		if err != nil {
			return err
		}
		atomic.StoreUint64(&journal[k], seq)
		atomic.StoreUint64(&journal[churnKeys], seq)
	}
}

// TestKillWriter: a writer SIGKILLed at random moments of Sets and
// Deletes leaves every entry as the last committed op or the op in
// flight made it, never torn; the next writer repairs the stripe it held
// (Len right again), and the map keeps working, trial after trial on the
// same map.
func TestKillWriter(t *testing.T) {
	n := *trials
	switch {
	case n > 0:
	case *longForm:
		n = 1000
	case testing.Short():
		n = 8
	default:
		n = 20
	}
	// Every other trial rebuilds stripes often, so that kills land in
	// rebuilds too.
	const slack = 24
	defer func() { rebuildAt = 0 }()
	size, err := SizeOf[uint16, [3]uint64](48, &Options{Stripes: 2})
	if err != nil {
		t.Fatal(err)
	}
	path, mem := proctest.SharedFile(t, journalBytes+size)
	regtest.Registry(t, path) // created here, opened by churnDict
	if _, err := Init[uint16, [3]uint64](mem[journalBytes:], 48, &Options{Stripes: 2}); err != nil {
		t.Fatal(err)
	}
	journal := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), churnKeys+1)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	start := uint64(1)
	heldAtKill, repaired := 0, uint64(0)
	for trial := range n {
		rebuildAt = uint64(trial%2) * slack
		d, err := churnDict(path, mem)
		if err != nil {
			t.Fatal(err)
		}
		c := proctest.Start(t, "churner", path, strconv.FormatUint(start, 10), strconv.FormatUint(rebuildAt, 10))
		c.Expect(proctest.Ready, 0)
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		c.Kill()
		if r := c.Wait(0); r.Signal == 0 {
			t.Fatalf("trial %d: churner ended by itself: code %d\n%s", trial, r.Code, r.Stderr)
		}
		if len(d.State().Held) > 0 {
			heldAtKill++
		}
		last := atomic.LoadUint64(&journal[churnKeys])
		inflight := last + 1
		fk, fdel := churnOp(inflight)
		present := 0
		for k := uint16(0); k < churnKeys; k++ {
			v, ok := d.Get(k) // no lock: works with a dead holder
			if ok && !churnValid(k, v) {
				t.Fatalf("trial %d: key %d torn or never written: %v", trial, k, v)
			}
			j := atomic.LoadUint64(&journal[k])
			committedOK := false
			if j == 0 {
				committedOK = !ok
			} else if _, del := churnOp(j); del {
				committedOK = !ok
			} else {
				committedOK = ok && v[0] == j
			}
			inflightOK := k == fk && (fdel && !ok || !fdel && ok && v[0] == inflight)
			if !committedOK && !inflightOK {
				t.Fatalf("trial %d: key %d: got %v %v; last committed op on it %d, op in flight %d (key %d, delete %v)",
					trial, k, v, ok, j, inflight, fk, fdel)
			}
			if ok {
				present++
			}
		}
		// Take every stripe's lock (repairing after a dead holder)
		// without changing anything, then the counts must be right.
		for k := uint16(0); k < churnKeys; k++ {
			if _, _, err := d.Update(k, func(old [3]uint64, ok bool) ([3]uint64, bool) { return old, ok }); err != nil {
				t.Fatalf("trial %d: Update after the kill: %v", trial, err)
			}
		}
		if got := d.Len(); got != present {
			t.Fatalf("trial %d: Len %d after repair, %d keys present", trial, got, present)
		}
		start = inflight + 1
	}
	d, err := churnDict(path, mem)
	if err != nil {
		t.Fatal(err)
	}
	st := d.State()
	for _, s := range st.Stripe {
		repaired += s.Repairs
	}
	t.Logf("%d kills; a stripe lock was held at %d of them; %d repairs; %d ops in all; stripes rebuilt %d+%d times",
		n, heldAtKill, repaired, start, st.Stripe[0].Rebuilds, st.Stripe[1].Rebuilds)
	if heldAtKill > 0 && repaired == 0 {
		t.Error("locks were held at kills but no stripe was repaired")
	}
	// The map keeps working: fill it with fresh values.
	for k := uint16(0); k < churnKeys; k++ {
		if err := d.Set(k, churnVal(k, start)); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
}

// deadOwner is a lock word naming a registry slot (of testRegistry's
// 1,024) that no process holds.
var deadOwner = proc.ID{Slot: 1000, Gen: 12345}.Pack()

// TestRepairAfterDeadWriter: a writer that died between committing a
// delete and storing the stripe's counts (the one multi-word update of
// the dict) leaves the counts off by one; the next writer takes the lock
// within about a check interval, recounts, and Len is right again.
func TestRepairAfterDeadWriter(t *testing.T) {
	opts := &Options{Stripes: 1, CheckInterval: 10 * time.Millisecond}
	d, _ := newDict[int64, int64](t, 32, opts)
	for k := range int64(10) {
		d.Set(k, k)
	}
	// The dead writer: it holds the lock and committed the delete of key 3
	// (ctl now a tombstone), but died before storing the counts.
	*d.t.word(0, sLock) = deadOwner
	slot, _, c := d.t.locate(0, []uint64{3}, d.t.hash1(3))
	atomic.StoreUint64(ctlOf(d.t.entry(d.t.active(0), uint64(slot))), next(c, stTomb))
	if d.Len() != 10 {
		t.Fatalf("Len %d before the repair, want the stale 10", d.Len())
	}
	// Readers never wait for it.
	if _, ok := d.Get(3); ok {
		t.Fatal("deleted key found")
	}
	if v, ok := d.Get(4); !ok || v != 4 {
		t.Fatal("Get with a dead lock holder")
	}
	t0 := time.Now()
	if err := d.Set(20, 20); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("the next writer waited %v for a dead holder", el)
	}
	st := d.State()
	if d.Len() != 10 || st.Stripe[0].Repairs != 1 || st.Tombstones != 1 || len(st.Held) != 0 {
		t.Fatalf("after the repair: Len %d, %+v", d.Len(), st)
	}
}

// TestCorruptLockWordSeized: a lock word a peer made not recoverable is
// taken over and the stripe repaired: the dict never wedges on it.
func TestCorruptLockWordSeized(t *testing.T) {
	d, _ := newDict[int64, int64](t, 32, &Options{Stripes: 1, CheckInterval: time.Millisecond})
	d.Set(1, 1)
	*d.t.word(0, sLock) = 1 << 29 // not recoverable
	if err := d.Set(2, 2); err != nil {
		t.Fatalf("Set on a not-recoverable lock word: %v", err)
	}
	if d.Len() != 2 || d.State().Stripe[0].Repairs != 1 {
		t.Fatalf("Len %d, %+v", d.Len(), d.State())
	}
}
