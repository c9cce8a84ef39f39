//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/bench"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/internal/proctest"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/process"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// The test binary plays every role the mpipc binary plays: benchmark and
// demo workers (re-executed by the verbs) and, with envMain set, mpipc
// itself (for tests that need a separate process to signal).
const envMain = "MPIPC_TEST_AS_MPIPC"

func TestMain(m *testing.M) {
	proctest.Register("holdlock", func(args []string) error {
		seg, err := shm.Open(args[0], nil)
		if err != nil {
			return err
		}
		l, err := lock.Open(seg, args[1], nil)
		if err != nil {
			return err
		}
		if err := l.Acquire(context.Background()); err != nil {
			return err
		}
		proctest.SignalReady()
		time.Sleep(time.Minute) // until killed
		return nil
	})
	process.Main() // the roles first: a demo worker inherits envMain
	if os.Getenv(envMain) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	proctest.Main(m)
}

// mpipc runs the command in process and returns its exit code and output.
func mpipc(t *testing.T, args ...string) (rc int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	rc = run(args, &o, &e)
	return rc, o.String(), e.String()
}

// newSegment creates a segment in a fresh directory with a lock named
// "jobs-lock", a semaphore "slots" of value 3, an rlock "tree", a joinable
// queue "jobs" holding 2 messages, an event "done" that is set and a
// condition "ready" bound to jobs-lock and a barrier "phase" of 3, and
// returns its path.
func newSegment(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	seg, err := shm.Create("seg1", &shm.Options{Dir: dir, Size: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Create(seg, "jobs-lock", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := semaphore.Create(seg, "slots", 3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rlock.Create(seg, "tree", nil); err != nil {
		t.Fatal(err)
	}
	q, err := ringbuf.CreateJoinable(seg, "jobs", 8, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Put(context.Background(), []byte("a"))
	q.Put(context.Background(), []byte("b"))
	e, err := event.Create(seg, "done", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Set()
	if _, err := condition.Create(seg, "ready", "jobs-lock", nil); err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Create(seg, "phase", 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	path = seg.Path()
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func foreignFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(p, bytes.Repeat([]byte("not a segment\n"), 400), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	for _, v := range verbs {
		rc, out, errOut := mpipc(t, v.name, "--help")
		if rc != exitOK || !strings.Contains(out, "usage: mpipc "+v.name) || errOut != "" {
			t.Errorf("%s --help: rc %d, stdout %q, stderr %q", v.name, rc, out, errOut)
		}
		rc, _, errOut = mpipc(t, v.name, "-no-such-flag")
		if rc != exitUsage || !strings.Contains(errOut, "flag provided but not defined") {
			t.Errorf("%s -no-such-flag: rc %d, stderr %q", v.name, rc, errOut)
		}
	}
	if rc, _, e := mpipc(t); rc != exitUsage || !strings.Contains(e, "usage: mpipc COMMAND") {
		t.Errorf("no command: rc %d, stderr %q", rc, e)
	}
	if rc, _, e := mpipc(t, "frobnicate"); rc != exitUsage || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: rc %d, stderr %q", rc, e)
	}
	if rc, o, _ := mpipc(t, "--help"); rc != exitOK || !strings.Contains(o, "stat") {
		t.Errorf("--help: rc %d, stdout %q", rc, o)
	}
	for _, args := range [][]string{
		{"stat"}, {"stat", "a", "b", "c"}, {"rm"}, {"ls", "a", "b"},
		{"bench", "-n", "0"}, {"bench", "-scale", "-1"}, {"bench", "-w", "W42"}, {"bench", "extra"}, {"bench", "-format", "csv"}, {"bench", "-w", "W1", "-s", "mpipc-queue"},
		{"demo", "-workers", "0"}, {"demo", "extra"},
	} {
		if rc, _, e := mpipc(t, args...); rc != exitUsage || !strings.Contains(e, "usage: mpipc "+args[0]) {
			t.Errorf("%q: rc %d, stderr %q; want usage error", args, rc, e)
		}
	}
}

func TestLs(t *testing.T) {
	dir, path := newSegment(t)
	foreign := foreignFile(t, dir)
	rc, out, e := mpipc(t, "ls", dir)
	if rc != exitOK {
		t.Fatalf("ls: rc %d, stderr %s", rc, e)
	}
	if !regexp.MustCompile(`seg1\s+\S+ -rw-------\s+128K\s+\S+\s+7/\d+\s+\d+\s+` + fmt.Sprint(os.Getpid()) + `\s`).MatchString(out) {
		t.Errorf("ls does not list seg1 with its owner, size, objects, attached processes and its creator:\n%s", out)
	}
	if strings.Contains(out, "notes.txt") {
		t.Errorf("ls lists a foreign file without -a:\n%s", out)
	}
	_, out, _ = mpipc(t, "ls", "-a", dir)
	if !strings.Contains(out, "notes.txt") || !strings.Contains(out, "not an mpipc segment") {
		t.Errorf("ls -a does not show the foreign file as such:\n%s", out)
	}
	// A damaged segment is listed with what is wrong.
	corrupt(t, path)
	_, out, _ = mpipc(t, "ls", dir)
	if !strings.Contains(out, "seg1") || !strings.Contains(out, "checksum") {
		t.Errorf("ls does not show the corrupt segment as corrupt:\n%s", out)
	}
	os.Remove(path)
	os.Remove(foreign)
	if rc, out, _ := mpipc(t, "ls", dir); rc != exitOK || !strings.Contains(out, "no mpipc segments") {
		t.Errorf("ls of an empty dir: rc %d, %q", rc, out)
	}
	if rc, _, e := mpipc(t, "ls", filepath.Join(dir, "missing")); rc != exitFail || !strings.Contains(e, "missing") {
		t.Errorf("ls of a missing dir: rc %d, stderr %q", rc, e)
	}
}

// corrupt flips a byte of the header's size field, so that the checksum
// no longer matches.
func corrupt(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], 17)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], 17); err != nil {
		t.Fatal(err)
	}
}

func TestStat(t *testing.T) {
	_, path := newSegment(t)
	seg, err := shm.Open(path, nil) // one attached process: this one
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	rc, out, e := mpipc(t, "stat", path)
	if rc != exitOK {
		t.Fatalf("stat: rc %d, stderr %s", rc, e)
	}
	if !regexp.MustCompile(`\n1\s+` + fmt.Sprint(os.Getpid()) + `\s+pid:\[\d+\]\s+\d+\s+alive\s`).MatchString(out) {
		t.Errorf("stat does not list this process as attached and alive:\n%s", out)
	}
	for _, want := range []string{"segment   " + path, "objects   7 of", "attached  1 processes", "jobs-lock", "lock v2", "free", "slots", "semaphore v1", "value 3", "tree", "rlock v2",
		"jobs", "joinable-queue", "2/8 messages (max 16 bytes), 2 unfinished tasks", "done", "event", "set, generation 1",
		"ready", "condition", "lock free, 0 waiting",
		"phase", "barrier", "3 parties, 0 waiting, round 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("stat output lacks %q:\n%s", want, out)
		}
	}
	if rc, out, _ := mpipc(t, "stat", path, "jobs-lock"); rc != exitOK || !strings.Contains(out, "jobs-lock") {
		t.Errorf("stat SEG OBJECT: rc %d\n%s", rc, out)
	}
	if rc, _, e := mpipc(t, "stat", path, "nope"); rc != exitFail || !strings.Contains(e, `no object named "nope"`) {
		t.Errorf("stat of a missing object: rc %d, stderr %q", rc, e)
	}
	if rc, _, e := mpipc(t, "stat", filepath.Join(filepath.Dir(path), "missing")); rc != exitFail || !strings.Contains(e, "no such file") {
		t.Errorf("stat of a missing file: rc %d, stderr %q", rc, e)
	}
}

func TestStatDeadHolder(t *testing.T) {
	_, path := newSegment(t)
	c := proctest.Start(t, "holdlock", path, "jobs-lock")
	c.Expect(proctest.Ready, 10*time.Second)
	pid := c.Pid()
	_, out, _ := mpipc(t, "stat", path)
	if !strings.Contains(out, fmt.Sprintf("held by pid %d (alive)", pid)) {
		t.Errorf("stat does not show the live holder %d:\n%s", pid, out)
	}
	c.Kill()
	c.Wait(10 * time.Second)
	rc, out, e := mpipc(t, "stat", path, "jobs-lock")
	if rc != exitOK {
		t.Fatalf("stat: rc %d, stderr %s", rc, e)
	}
	if !strings.Contains(out, fmt.Sprintf("held by pid %d (DEAD", pid)) {
		t.Errorf("stat does not show the lock held by dead pid %d:\n%s", pid, out)
	}
}

func TestStatCorruptAndForeign(t *testing.T) {
	dir, path := newSegment(t)
	corrupt(t, path)
	rc, _, e := mpipc(t, "stat", path)
	if rc != exitFail || !strings.Contains(e, "corrupt: header checksum mismatch") || !strings.Contains(e, path) {
		t.Errorf("stat of a corrupt segment: rc %d, stderr %q", rc, e)
	}
	foreign := foreignFile(t, dir)
	rc, _, e = mpipc(t, "stat", foreign)
	if rc != exitFail || !strings.Contains(e, "not an mpipc segment") || !strings.Contains(e, foreign) {
		t.Errorf("stat of a foreign file: rc %d, stderr %q", rc, e)
	}
	if _, err := shm.Inspect(foreign); !errors.Is(err, shm.ErrNotSegment) {
		t.Errorf("the foreign file is not ErrNotSegment but %v", err)
	}
}

func TestRm(t *testing.T) {
	dir, path := newSegment(t)
	foreign := foreignFile(t, dir)
	rc, _, e := mpipc(t, "rm", foreign)
	if rc != exitFail || !strings.Contains(e, "not an mpipc segment") || !strings.Contains(e, "-f") {
		t.Errorf("rm of a foreign file: rc %d, stderr %q", rc, e)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("rm removed the foreign file: %v", err)
	}
	if rc, out, _ := mpipc(t, "rm", path); rc != exitOK || !strings.Contains(out, "removed "+path) {
		t.Errorf("rm of a segment: rc %d, %q", rc, out)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("segment still there after rm: %v", err)
	}
	if rc, _, e := mpipc(t, "rm", path); rc != exitFail || !strings.Contains(e, path) {
		t.Errorf("rm of a missing file: rc %d, stderr %q", rc, e)
	}
	if rc, _, _ := mpipc(t, "rm", "-f", foreign); rc != exitOK {
		t.Errorf("rm -f of a foreign file: rc %d", rc)
	}
	if _, err := os.Stat(foreign); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm -f left the foreign file: %v", err)
	}
	// A damaged segment is still an mpipc segment: rm removes it.
	_, path = newSegment(t)
	corrupt(t, path)
	if rc, out, _ := mpipc(t, "rm", path); rc != exitOK || !strings.Contains(out, "checksum") {
		t.Errorf("rm of a corrupt segment: rc %d, %q", rc, out)
	}
}

func TestBenchJSON(t *testing.T) {
	rc, out, e := mpipc(t, "bench", "-json", "-scale", "0.01", "-n", "1", "-q")
	if rc != exitOK {
		t.Fatalf("bench -json: rc %d\n%s", rc, e)
	}
	type line struct {
		Workload, System, Metric string
		Value                    *float64
		N                        *int64
		Procs                    *int
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		if l.Workload == "" || l.Metric == "" || l.Value == nil || *l.Value <= 0 || l.N == nil || *l.N <= 0 || l.Procs == nil || *l.Procs <= 0 {
			t.Errorf("incomplete line %s", sc.Text())
		}
		if !strings.HasPrefix(l.System, "mpipc-") && !knownPeers[l.System] {
			t.Errorf("system %q is neither mpipc-… nor a known peer", l.System)
		}
		seen[l.Workload+" "+l.System] = true
	}
	for _, c := range bench.Cases() {
		if !seen[c.Label()] {
			t.Errorf("no figure for %s", c.Label())
		}
	}
}

// bench -format benchstat prints go test -bench lines: one per run of
// every case, "BenchmarkWORKLOAD/SYSTEM-P N value unit ...".
func TestBenchBenchstat(t *testing.T) {
	rc, out, e := mpipc(t, "bench", "-format", "benchstat", "-w", "W1,W7", "-s", "mpipc-lock,mpipc-queue,go-chan", "-scale", "0.01", "-n", "2", "-q")
	if rc != exitOK {
		t.Fatalf("bench -format benchstat: rc %d\n%s", rc, e)
	}
	line := regexp.MustCompile(`^Benchmark(W[0-9A-Za-z-]+)/([a-z0-9-]+)-[0-9]+\t[0-9]+(\t[0-9.e+-]+ [A-Za-z_/]+)+$`)
	config := regexp.MustCompile(`^[a-z][^ :]*: `)
	runs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch m := line.FindStringSubmatch(l); {
		case m != nil:
			for _, f := range strings.Split(l, "\t")[2:] {
				v, unit, _ := strings.Cut(f, " ")
				if x, err := strconv.ParseFloat(v, 64); err != nil || x <= 0 || unit == "" {
					t.Errorf("bad value %q in %q", f, l)
				}
			}
			runs[m[1]+" "+m[2]]++
		case config.MatchString(l):
		default:
			t.Errorf("neither a benchmark nor a configuration line: %q", l)
		}
	}
	sel, _ := bench.SelectSystems([]string{"W1", "W7"}, []string{"mpipc-lock", "mpipc-queue", "go-chan"})
	for _, c := range sel {
		if runs[c.Label()] != 2 {
			t.Errorf("%s: %d lines, want 2 (one per run)", c.Label(), runs[c.Label()])
		}
	}
	if len(runs) != len(sel) || len(sel) != 5 {
		t.Errorf("%d cases printed, %d selected, want 5 (-s filters systems): %v", len(runs), len(sel), runs)
	}
}

var knownPeers = map[string]bool{"go-sync-mutex": true, "go-chan": true, "go-os-pipe": true, "go-unix-seqpacket": true,
	"go-rwmutex-map": true, "go-sync-map": true}

func TestBenchTableAndAnchors(t *testing.T) {
	anchors := filepath.Join(t.TempDir(), "results-x.jsonl")
	os.WriteFile(anchors, []byte(`{"workload":"W1","system":"c-futex-mutex","metric":"ns_per_op","value":9.8,"n":100,"runs":[9.7,9.8,10.2],"min":9.7,"max":10.2}
{"workload":"W1","system":"py-mp-lock","metric":"ns_per_op","value":32.7,"n":100}
`), 0o600)
	rc, out, e := mpipc(t, "bench", "-w", "W1,W2", "-scale", "0.01", "-n", "2", "-anchors", anchors)
	if rc != exitOK {
		t.Fatalf("bench: rc %d\n%s", rc, e)
	}
	for _, re := range []string{
		// Figures above 1,000 print with commas (the race detector's are).
		`W1\s+ns_per_op\s+mpipc-lock\s+[\d.,]+\s+[\d.,]+–[\d.,]+\s+2\s+go-sync-mutex\s+[\d.,]+\s+[\d.]+×`,
		`c-futex-mutex \(anchors\)\s+9\.80\s+[\d.]+×`,
		`py-mp-lock \(anchors\)\s+32\.70\s+[\d.]+×`,
		`W2\s+ops_per_s\s+mpipc-lock.*go-sync-mutex`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("table does not match %s:\n%s", re, out)
		}
	}
	if !strings.Contains(e, "W1 mpipc-lock") {
		t.Errorf("no progress line on stderr: %q", e)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{not json\n"), 0o600)
	if rc, _, e := mpipc(t, "bench", "-w", "W1", "-anchors", bad); rc != exitFail || !strings.Contains(e, "bad.jsonl:1") {
		t.Errorf("bench with a bad anchors file: rc %d, stderr %q", rc, e)
	}
	if rc, _, e := mpipc(t, "bench", "-w", "W1", "-anchors", bad+".missing"); rc != exitFail || !strings.Contains(e, "missing") {
		t.Errorf("bench with a missing anchors file: rc %d, stderr %q", rc, e)
	}
}

func TestDemo(t *testing.T) {
	rc, out, e := mpipc(t, "demo", "-workers", "3", "-tasks", "300")
	if rc != exitOK {
		t.Fatalf("demo: rc %d\n%s\n%s", rc, out, e)
	}
	if !strings.Contains(out, "total 9045050 = sum of t² for t = 1..300: checked") {
		t.Errorf("demo does not print the checked total:\n%s", out)
	}
	ws := regexp.MustCompile(`worker \(pid \d+\): (\d+) tasks \(phase 1: (\d+), phase 2: (\d+)\)( \(killed\))?`).FindAllStringSubmatch(out, -1)
	if len(ws) != 4 {
		t.Errorf("demo reports %d workers, want 3 and the one that replaced the killed one:\n%s", len(ws), out)
	}
	var p1, p2, killed int
	for _, w := range ws {
		var n, a, b int
		fmt.Sscan(w[1], &n)
		fmt.Sscan(w[2], &a)
		fmt.Sscan(w[3], &b)
		if a+b != n {
			t.Errorf("worker's phases do not add up: %s", w[0])
		}
		p1, p2 = p1+a, p2+b
		if w[4] != "" {
			killed++
		}
	}
	if p1 != 150 || p2 != 150 || killed != 1 {
		t.Errorf("phases did %d and %d tasks, want 150 each; %d workers killed, want 1:\n%s", p1, p2, killed, out)
	}
	var started int
	if m := regexp.MustCompile(`tasks started: (\d+) for 300 tasks`).FindStringSubmatch(out); m == nil {
		t.Errorf("demo does not count the tasks started:\n%s", out)
	} else if fmt.Sscan(m[1], &started); started < 300 || started > 301 {
		t.Errorf("%d tasks started, want 300 or 301 (one cut short by the kill)", started)
	}
	if !strings.Contains(out, "worker processes started: 4 (1 replaced)") {
		t.Errorf("demo does not report the replaced worker:\n%s", out)
	}
	for _, want := range []string{"phase 1: tasks up to 150 done", "phase 2: tasks up to 300 done"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`segment (\S+):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo does not name its segment:\n%s", out)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo left its segment %s: %v", m[1], err)
	}
}

func TestDemoInterrupted(t *testing.T) {
	exe, _ := os.Executable()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(exe, "demo", "-tasks", "100000", "-delay", "5ms")
		cmd.Env = append(os.Environ(), envMain+"=1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		first, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`segment (\S+):`).FindStringSubmatch(first)
		if m == nil {
			cmd.Process.Kill()
			t.Fatalf("first line %q does not name the segment", first)
		}
		t.Cleanup(func() { os.Remove(m[1]) }) // if the demo could not
		if _, err := os.Stat(m[1]); err != nil {
			t.Fatalf("segment not there while the demo runs: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(sig)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFail {
			t.Errorf("%v: demo exited with %v, want status 1", sig, err)
		}
		if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: demo left its segment %s: %v", sig, m[1], err)
		}
		if !strings.Contains(errOut.String(), "removed") {
			t.Errorf("%v: stderr %q", sig, errOut.String())
		}
	}
}

// TestDemoWorkerKilled: a worker killed from outside is replaced, and the
// demo still completes every task.
func TestDemoWorkerKilled(t *testing.T) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "demo", "-tasks", "2000", "-delay", "1ms", "-kill=false")
	cmd.Env = append(os.Environ(), envMain+"=1")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	first, _ := br.ReadString('\n')
	m := regexp.MustCompile(`segment (\S+):`).FindStringSubmatch(first)
	if m == nil {
		cmd.Process.Kill()
		t.Fatalf("first line %q does not name the segment", first)
	}
	t.Cleanup(func() { os.Remove(m[1]) }) // if the demo could not
	var kids []string
	for deadline := time.Now().Add(10 * time.Second); len(kids) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		kids = nil // children of every thread of the demo process
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	if len(kids) == 0 {
		cmd.Process.Kill()
		t.Fatal("no worker processes found")
	}
	var pid int
	fmt.Sscan(kids[0], &pid)
	syscall.Kill(pid, syscall.SIGKILL)
	rest, _ := io.ReadAll(br)
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo exited with %v after a worker was killed, want success (the pool replaces it)\n%s\n%s", err, rest, errOut.String())
	}
	if !strings.Contains(string(rest), "sum of t² for t = 1..2000: checked") || !strings.Contains(string(rest), "replaced)") {
		t.Errorf("demo output after a worker was killed:\n%s", rest)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo left its segment %s: %v", m[1], err)
	}
}
