//go:build linux

package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestMain(m *testing.M) {
	WorkerMain()
	os.Exit(m.Run())
}

// Test-only cases (workload "TEST", never selected by default runs of the
// real workloads below): one whose result check fails, one whose worker
// fails.
func init() {
	addProc(procCase{
		Workload: "TEST", System: "mpipc-wrong-count", BaseN: 10, Procs: 2,
		Worker: func(w *Worker) (func() error, error) {
			return func() error { *w.Result(0) = uint64(w.N - 1); return nil }, nil
		},
		Check:   checkReceived,
		Metrics: nsPerOp("ns_per_op"),
	})
	addProc(procCase{
		Workload: "TEST", System: "mpipc-worker-fails", BaseN: 10, Procs: 2,
		Worker: func(w *Worker) (func() error, error) {
			return func() error {
				if w.Idx == 1 {
					return errors.New("worker gives up")
				}
				return nil
			}, nil
		},
		Metrics: nsPerOp("ns_per_op"),
	})
	registerWorker("TEST/hang", func(w *Worker) (func() error, error) {
		return func() error { time.Sleep(time.Minute); return nil }, nil
	})
}

func realWorkloads() []string { return workloadOrder }

func TestSmoke(t *testing.T) {
	var prog strings.Builder
	var streamed int
	sums, err := Run(Options{Workloads: realWorkloads(), Scale: 0.002, Runs: 2, Progress: &prog, Result: func(Result) { streamed++ }})
	if err != nil {
		t.Fatalf("%v\n%s", err, prog.String())
	}
	sel, _ := Select(realWorkloads())
	if n := strings.Count(prog.String(), "\n"); n != 2*len(sel) {
		t.Errorf("%d progress lines for %d case runs:\n%s", n, 2*len(sel), prog.String())
	}
	seen := map[string]bool{}
	for _, s := range sums {
		seen[s.Workload+" "+s.System] = true
		if len(s.Runs) != 2 || s.Min > s.Value || s.Value > s.Max || s.Value <= 0 || s.N <= 0 || s.Procs <= 0 {
			t.Errorf("bad summary %+v", s)
		}
	}
	if streamed != 2*len(sums) {
		t.Errorf("%d results streamed, want %d", streamed, 2*len(sums))
	}
	for _, c := range sel {
		if !seen[c.Label()] {
			t.Errorf("no figure for %s", c.Label())
		}
	}
	var b strings.Builder
	if err := WriteTable(&b, sums, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "mpipc-lock") || !strings.Contains(b.String(), "go-sync-mutex") || !strings.Contains(b.String(), "×") {
		t.Errorf("table lacks ours, peers or ratios:\n%s", b.String())
	}
}

func TestFailuresAreLoud(t *testing.T) {
	var prog strings.Builder
	sums, err := Run(Options{Workloads: []string{"TEST"}, Progress: &prog})
	if err == nil {
		t.Fatalf("no error; summaries %+v", sums)
	}
	for _, want := range []string{"RESULT MISMATCH: received 9 of 10 messages", "worker 1 of TEST/mpipc-worker-fails", "worker gives up"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if len(sums) != 0 {
		t.Errorf("failed runs left figures: %+v", sums)
	}
	if !strings.Contains(prog.String(), "!!!!!! FAILED") {
		t.Errorf("progress does not flag the failure:\n%s", prog.String())
	}
	if _, err := Select([]string{"W42"}); !errors.Is(err, ErrNoWorkload) {
		t.Errorf("Select(W42) = %v, want ErrNoWorkload", err)
	}
	if sel, err := SelectSystems([]string{"=w6"}, []string{"mpipc-queue"}); err != nil || len(sel) != 1 || sel[0].Label() != "W6 mpipc-queue" {
		t.Errorf("SelectSystems(=w6, mpipc-queue) = %v, %v; want W6 mpipc-queue alone", sel, err)
	}
	if _, err := SelectSystems([]string{"W1"}, []string{"mpipc-queue"}); !errors.Is(err, ErrNoWorkload) {
		t.Errorf("SelectSystems(W1, mpipc-queue) = %v, want ErrNoWorkload", err)
	}
	sel, err := SelectSystems([]string{"W6", "W7"}, []string{"MPIPC-QUEUE"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range sel {
		got = append(got, c.Label())
	}
	if want := []string{"W6 mpipc-queue", "W6-4KiB mpipc-queue", "W7 mpipc-queue", "W7-4x4 mpipc-queue", "W7-8x8 mpipc-queue"}; !slices.Equal(got, want) {
		t.Errorf("SelectSystems(W6 W7, mpipc-queue) = %q, want %q", got, want)
	}
}

func TestWorkerTimeout(t *testing.T) {
	old := caseTimeout
	caseTimeout = 300 * time.Millisecond
	defer func() { caseTimeout = old }()
	_, err := runProcs(procSpec{id: "TEST/hang", procs: 1, n: 1})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("runProcs of a hanging worker: %v", err)
	}
}

func TestAnchorsAndCompare(t *testing.T) {
	p := filepath.Join(t.TempDir(), "results.jsonl")
	os.WriteFile(p, []byte(`{"workload":"W6","system":"c-mpmc-ring","metric":"msgs_per_s","value":3.0e7,"n":1,"runs":[2e7,3e7,4e7],"min":2e7,"max":4e7}
{"workload":"W6","system":"py-mp-queue","metric":"msgs_per_s","value":2.8e5,"n":1}
{"workload":"W6","system":"py-mp-simplequeue","metric":"msgs_per_s","value":3.0e5,"n":1}
{"workload":"W6","system":"py-mp-simplequeue","metric":"msgs_per_s","value":3.2e5,"n":1}
{"workload":"W8","system":"c-ring-spin-futex","metric":"median_us","value":0.16,"n":1}
not json lines are skipped only when they do not start with a brace
`), 0o600)
	an, err := ReadAnchors(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(an) != 4 || an[2].Value != 3.1e5 || len(an[2].Runs) != 2 || an[0].Value != 3e7 || an[0].Min != 2e7 {
		t.Fatalf("anchors read as %+v", an)
	}
	ours := []Summary{
		{Result: Result{Workload: "W6", System: "mpipc-queue", Metric: "msgs_per_s", Value: 1.5e7}},
		{Result: Result{Workload: "W6", System: "go-os-pipe", Metric: "msgs_per_s", Value: 1e6}},
		{Result: Result{Workload: "W8", System: "mpipc-queue", Metric: "median_us", Value: 0.32}},
	}
	rows := Compare(ours, an)
	got := map[string]float64{}
	for _, r := range rows {
		if r.Peer != nil {
			got[r.Ours.Key()+" vs "+r.Peer.System] = r.Ratio
		}
	}
	want := map[string]float64{
		"W6 mpipc-queue msgs_per_s vs go-os-pipe":        15,
		"W6 mpipc-queue msgs_per_s vs c-mpmc-ring":       0.5,
		"W6 mpipc-queue msgs_per_s vs py-mp-simplequeue": 1.5e7 / 3.1e5, // the best Python queue
		"W8 mpipc-queue median_us vs c-ring-spin-futex":  0.5,           // lower is better
	}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9*v {
			t.Errorf("%s: ratio %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{\"workload\":1}\n"), 0o600)
	if _, err := ReadAnchors(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") {
		t.Errorf("ReadAnchors of a bad file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	os.WriteFile(empty, nil, 0o600)
	if _, err := ReadAnchors(empty); err == nil {
		t.Error("ReadAnchors of an empty file: no error")
	}
}

// Every mpipc case is compared with some anchor when an anchors file is
// given, or is a scale workload compared with its base workload (which is
// a case of the same system), or is such a base.
func TestEveryCaseHasAnchors(t *testing.T) {
	labels := map[string]bool{}
	bases := map[string]bool{}
	for _, c := range Cases() {
		labels[c.Label()] = true
	}
	for w, b := range scaleBase {
		bases[b] = true
		if !slices.Contains(workloadOrder, w) || !slices.Contains(workloadOrder, b) {
			t.Errorf("scale workload %s or its base %s is not in workloadOrder", w, b)
		}
	}
	for _, c := range Cases() {
		if !c.Ours() || c.Workload == "TEST" || len(anchorPeers[c.Label()]) > 0 || bases[c.Workload] {
			continue
		}
		b, ok := scaleBase[c.Workload]
		if !ok {
			t.Errorf("%s has no anchors to compare with", c.Label())
		} else if !labels[b+" "+c.System] {
			t.Errorf("%s is compared with %s %s, which is not a case", c.Label(), b, c.System)
		}
	}
	for _, w := range workloadOrder {
		if _, err := Select([]string{w}); err != nil {
			t.Errorf("workload %s in workloadOrder has no case: %v", w, err)
		}
	}
}

// benchLine is one result line of the go test -bench format, parsed as
// the format's specification (golang.org/design/14313-benchmark-format)
// reads it.
type benchLine struct {
	name   string // without the -GOMAXPROCS suffix
	procs  int
	n      int64
	values map[string]float64 // by unit
}

// parseBenchFormat parses go test -bench output: configuration lines
// "key: value" (key without spaces, starting with a lowercase letter),
// result lines "BenchmarkName-P N value unit [value unit]...", blank lines.
// Anything else is an error.
func parseBenchFormat(text string) (config map[string]string, lines []benchLine, err error) {
	config = map[string]string{}
	nameRE := regexp.MustCompile(`^Benchmark[^\p{Ll}\s]\S*-(\d+)$`)
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(f[0], "Benchmark"):
			m := nameRE.FindStringSubmatch(f[0])
			if m == nil {
				return nil, nil, fmt.Errorf("line %d: bad benchmark name %q", i+1, f[0])
			}
			if len(f) < 4 || len(f)%2 != 0 {
				return nil, nil, fmt.Errorf("line %d: want name, N and value-unit pairs: %q", i+1, l)
			}
			bl := benchLine{name: strings.TrimSuffix(f[0], "-"+m[1]), values: map[string]float64{}}
			bl.procs, _ = strconv.Atoi(m[1])
			if bl.n, err = strconv.ParseInt(f[1], 10, 64); err != nil || bl.n <= 0 {
				return nil, nil, fmt.Errorf("line %d: iterations %q", i+1, f[1])
			}
			for j := 2; j < len(f); j += 2 {
				v, err := strconv.ParseFloat(f[j], 64)
				if err != nil {
					return nil, nil, fmt.Errorf("line %d: value %q: %v", i+1, f[j], err)
				}
				if _, dup := bl.values[f[j+1]]; dup {
					return nil, nil, fmt.Errorf("line %d: unit %q twice", i+1, f[j+1])
				}
				bl.values[f[j+1]] = v
			}
			lines = append(lines, bl)
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") || !unicode.IsLower(rune(k[0])) {
				return nil, nil, fmt.Errorf("line %d: neither a result nor a configuration line: %q", i+1, l)
			}
			config[k] = strings.TrimSpace(v)
		}
	}
	return config, lines, nil
}

func TestWriteBenchstat(t *testing.T) {
	sums := []Summary{
		{Result: Result{Workload: "W6", System: "mpipc-queue", Metric: "msgs_per_s", N: 10_000_000}, Runs: []float64{1.3e7, 4.6e6, 1.5e7}},
		{Result: Result{Workload: "W6", System: "mpipc-queue", Metric: "MB_per_s", N: 10_000_000}, Runs: []float64{832, 294.4, 960}},
		{Result: Result{Workload: "W7-8x8", System: "mpipc-queue", Metric: "msgs_per_s", N: 5_000_000}, Runs: []float64{2e6, 2.5e6, 3e6}},
		{Result: Result{Workload: "W1", System: "mpipc-rlock", Metric: "ns_per_op", N: 50_000_000}, Runs: []float64{17.54, 0.0123, 39}},
	}
	var b strings.Builder
	if err := WriteBenchstat(&b, sums); err != nil {
		t.Fatal(err)
	}
	config, lines, err := parseBenchFormat(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if config["goos"] == "" || config["goarch"] == "" || config["pkg"] == "" {
		t.Errorf("configuration %v lacks goos, goarch or pkg", config)
	}
	byName := map[string][]benchLine{}
	for _, l := range lines {
		byName[l.name] = append(byName[l.name], l)
	}
	if len(byName) != 3 || len(lines) != 9 {
		t.Fatalf("%d names, %d lines; want 3 names of 3 runs each:\n%s", len(byName), len(lines), b.String())
	}
	for _, s := range sums {
		ls := byName["Benchmark"+s.Workload+"/"+s.System]
		for i, l := range ls {
			got, ok := l.values[BenchUnit(s.Metric)]
			if !ok || math.Abs(got-s.Runs[i]) > 1e-3*s.Runs[i] || l.n != s.N {
				t.Errorf("run %d of %s %s: line %+v, want %v %s n=%d", i, s.Workload, s.Metric, l, s.Runs[i], BenchUnit(s.Metric), s.N)
			}
		}
	}
	if u := BenchUnit("ns_per_op"); u != "ns/op" {
		t.Errorf("BenchUnit(ns_per_op) = %q", u)
	}
	for _, bad := range []string{"Benchmarkw6-2 1 1 ns/op", "BenchmarkW6 1 1 ns/op", "BenchmarkW6-2 x 1 ns/op", "BenchmarkW6-2 1 1", "Some text"} {
		if _, _, err := parseBenchFormat(bad); err == nil {
			t.Errorf("the parser accepts %q", bad)
		}
	}
}
