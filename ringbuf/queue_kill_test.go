//go:build linux

package ringbuf

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/internal/regtest"
)

var qKills = flag.Int("ringbuf.kills", 200, "SIGKILLs in TestQueueKill (scale up for a soak)")

func init() {
	roles["q-kill-producer"] = qRoleKillProducer
	roles["q-kill-consumer"] = qRoleKillConsumer
}

// Layout of the kill test's shared file: the queue, then a ledger of how
// many Puts each producer incarnation completed, a bitmap of received
// messages, and counters of anomalies seen by consumers.
const (
	qkCap      = 64
	qkMaxMsg   = 64
	qkMaxInc   = 4096    // producer incarnations
	qkPer      = 1 << 15 // messages per incarnation at most
	qkCheck    = 10 * time.Millisecond
	qkQueueEnd = 384 + qkCap*128
	qkLedger   = qkQueueEnd
	qkBitmap   = qkLedger + qkMaxInc*8
	qkStats    = qkBitmap + qkMaxInc*qkPer/8
	qkSize     = qkStats + 64
)

const (
	qkStatDup   = 0 // a message received twice
	qkStatOrder = 1 // an incarnation's messages out of order at one consumer
	qkStatBogus = 2 // a message with a bad header or torn payload
)

func qkMsg(buf []byte, inc, seq int) int {
	n := 16 + (seq*13+inc)%(qkMaxMsg-16+1)
	binary.LittleEndian.PutUint32(buf, uint32(inc))
	binary.LittleEndian.PutUint32(buf[4:], uint32(seq))
	binary.LittleEndian.PutUint64(buf[8:], uint64(n))
	for i := 16; i < n; i++ {
		buf[i] = byte(inc ^ seq ^ i)
	}
	return n
}

// q-kill-producer PATH INC: puts qkPer messages, recording each completed
// Put in the ledger.
func qRoleKillProducer(args []string) error {
	mem, err := qChildMap(args[0])
	if err != nil {
		return err
	}
	reg, err := regtest.Open(args[0])
	if err != nil {
		return err
	}
	q, err := Attach(mem[:qkQueueEnd], &Options{CheckInterval: qkCheck, Registry: reg})
	if err != nil {
		return err
	}
	inc := atoi(args[1])
	done := u64at(mem, qkLedger+inc*8)
	var buf [qkMaxMsg]byte
	for seq := 0; seq < qkPer; seq++ {
		n := qkMsg(buf[:], inc, seq)
		if err := q.Put(context.Background(), buf[:n]); err != nil {
			return err
		}
		atomic.StoreUint64(done, uint64(seq+1))
	}
	return nil
}

// q-kill-consumer PATH: gets (GetInto and Borrow, alternately) until the
// queue is closed and drained, marking each message in the bitmap and
// counting anomalies.
func qRoleKillConsumer(args []string) error {
	mem, err := qChildMap(args[0])
	if err != nil {
		return err
	}
	reg, err := regtest.Open(args[0])
	if err != nil {
		return err
	}
	q, err := Attach(mem[:qkQueueEnd], &Options{CheckInterval: qkCheck, Registry: reg})
	if err != nil {
		return err
	}
	stat := func(i int) { atomic.AddUint32(u32at(mem, qkStats+4*i), 1) }
	last := make([]int32, qkMaxInc)
	for i := range last {
		last[i] = -1
	}
	var buf, want [qkMaxMsg]byte
	for i := 0; ; i++ {
		// Every other message is borrowed: GetInto holds no claim while
		// it copies, Borrow does, so kills land in both.
		var n int
		if i%2 == 0 {
			n, err = q.GetInto(context.Background(), buf[:])
		} else {
			var b Borrowed
			if b, err = q.Borrow(context.Background()); err == nil {
				n = copy(buf[:], b.Bytes())
				err = b.Release()
			}
		}
		if errors.Is(err, ErrShutdown) {
			return nil
		}
		if err != nil {
			return err
		}
		inc, seq := int(binary.LittleEndian.Uint32(buf[:])), int(binary.LittleEndian.Uint32(buf[4:]))
		if n < 16 || inc >= qkMaxInc || seq >= qkPer {
			stat(qkStatBogus)
			continue
		}
		if m := qkMsg(want[:], inc, seq); m != n || string(want[:m]) != string(buf[:n]) {
			stat(qkStatBogus)
			continue
		}
		bit := inc*qkPer + seq
		w := (*uint32)(u32at(mem, qkBitmap+bit/32*4))
		if atomic.OrUint32(w, 1<<(bit%32))&(1<<(bit%32)) != 0 {
			stat(qkStatDup)
		}
		if int32(seq) <= last[inc] {
			stat(qkStatOrder)
		}
		last[inc] = int32(seq)
	}
}

type qkChild struct {
	c       *proctest.Child
	inc     int // producer incarnation, or -1 for a consumer
	started time.Time
}

// TestQueueKill kills random producers and consumers with SIGKILL while
// they work, and checks the documented crash semantics: the survivors
// finish, no message is received twice, and the only committed messages
// lost are at most one per killed consumer (a killed producer may lose
// only the message it was putting, which the ledger never counted).
func TestQueueKill(t *testing.T) {
	kills := *qKills
	if testing.Short() {
		kills = min(kills, 40)
	}
	mem, path := qTestMap(t, qkSize)
	// Every process names the same registry, so that a killed claimant's
	// slot is reclaimed (without one, nobody can be proven dead).
	q, err := Init(mem[:qkQueueEnd], qkCap, qkMaxMsg, &Options{CheckInterval: qkCheck, Registry: regtest.Registry(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	if SizeOf(qkCap, qkMaxMsg) != qkQueueEnd {
		t.Fatal("layout constant out of date")
	}
	const producers, consumers = 3, 3
	nextInc := 0
	var live []*qkChild
	killed := map[int]bool{} // producer incarnations killed
	startProducer := func() {
		if nextInc < qkMaxInc {
			live = append(live, &qkChild{proctest.Start(t, "q-kill-producer", path, strconv.Itoa(nextInc)), nextInc, time.Now()})
			nextInc++
		}
	}
	startConsumer := func() {
		live = append(live, &qkChild{proctest.Start(t, "q-kill-consumer", path), -1, time.Now()})
	}
	for range producers {
		startProducer()
	}
	for range consumers {
		startConsumer()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	var prodKills, consKills int
	for prodKills+consKills < kills {
		time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond)
		// Replace producers that finished their run.
		for i := 0; i < len(live); i++ {
			if c := live[i]; c.inc >= 0 {
				select {
				case <-c.c.Done():
					c.c.WaitOK()
					live = append(live[:i], live[i+1:]...)
					i--
					startProducer()
				default:
				}
			}
		}
		v := live[rng.IntN(len(live))]
		if time.Since(v.started) < 30*time.Millisecond {
			continue // let it get to work first
		}
		v.c.Kill()
		<-v.c.Done()
		for i := range live {
			if live[i] == v {
				live = append(live[:i], live[i+1:]...)
				break
			}
		}
		if v.inc >= 0 {
			killed[v.inc] = true
			prodKills++
			startProducer()
		} else {
			consKills++
			startConsumer()
		}
	}
	killPhase := time.Since(start)
	// Survivors finish: the live producers complete their runs, then the
	// consumers drain the closed queue.
	for _, c := range live {
		if c.inc >= 0 {
			c.c.WaitOK()
		}
	}
	q.Shutdown(false)
	for _, c := range live {
		if c.inc < 0 {
			c.c.WaitOK()
		}
	}
	stats := func(i int) uint32 { return atomic.LoadUint32(u32at(mem, qkStats+4*i)) }
	var committed, received, lost, inflightGot int
	for inc := 0; inc < nextInc; inc++ {
		done := int(atomic.LoadUint64(u64at(mem, qkLedger+inc*8)))
		for seq := 0; seq < qkPer; seq++ {
			bit := inc*qkPer + seq
			got := atomic.LoadUint32(u32at(mem, qkBitmap+bit/32*4))&(1<<(bit%32)) != 0
			switch {
			case seq < done:
				committed++
				if got {
					received++
				} else {
					lost++
				}
			case got && seq == done && killed[inc]:
				inflightGot++ // put by a producer killed before it noted it
			case got:
				t.Errorf("incarnation %d: message %d received, but only %d were put", inc, seq, done)
			}
		}
	}
	t.Logf("%d kills (%d producers, %d consumers) in %v; %d incarnations; %d committed, %d received, %d lost, %d in-flight delivered; queue %+v",
		prodKills+consKills, prodKills, consKills, killPhase, nextInc, committed, received, lost, inflightGot, q.State())
	if d, o, b := stats(qkStatDup), stats(qkStatOrder), stats(qkStatBogus); d != 0 || o != 0 || b != 0 {
		t.Errorf("duplicates %d, order violations %d, bogus messages %d", d, o, b)
	}
	if lost > consKills {
		t.Errorf("%d committed messages lost, more than the %d consumers killed", lost, consKills)
	}
	if prodKills+consKills < 200 && !testing.Short() && *qKills >= 200 {
		t.Errorf("only %d kills", prodKills+consKills)
	}
}
