package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result is one figure of one run of one case, as the anchors print it:
//
//	{"workload":"W6","system":"mpipc-queue","metric":"msgs_per_s","value":…,"n":…,"procs":2}
type Result struct {
	Workload string  `json:"workload"`
	System   string  `json:"system"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	N        int64   `json:"n"`
	Procs    int     `json:"procs"`
	MsgBytes int     `json:"msg_bytes,omitempty"`
}

// Summary is a figure over several runs: Value is the median, as in the
// anchors' results-*.jsonl files.
type Summary struct {
	Result
	Runs   []float64 `json:"runs"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Spread float64   `json:"spread"`
	// Source says where the figure comes from: "" for this run, or the
	// anchors file it was read from.
	Source string `json:"-"`
}

// Key identifies a figure across runs.
func (r Result) Key() string { return r.Workload + " " + r.System + " " + r.Metric }

// Case is one (workload, system) pair of the suite.
type Case struct {
	Workload string // W1 … W13-1M (see workloadOrder)
	System   string // mpipc-… for the library, go-… for peers
	BaseN    int64  // iterations of one run at scale 1, chosen for about 0.5–1 s here
	Procs    int    // processes (or goroutines, for in-process peers)
	run      func(n int64) ([]Result, error)
}

// Label is "WORKLOAD SYSTEM", as run.sh labels cases.
func (c *Case) Label() string { return c.Workload + " " + c.System }

// Ours reports whether the case measures mpipc (and not a peer).
func (c *Case) Ours() bool { return strings.HasPrefix(c.System, "mpipc-") }

var cases []*Case

func addCase(c *Case) { cases = append(cases, c) }

var workloadOrder = []string{"W1", "W2", "W2-8p", "W3", "W4", "W5", "W6", "W6-4KiB", "W7", "W7-4x4", "W7-8x8", "W8", "W9", "W10", "W10-1p", "W11",
	"W12-10", "W12-1000", "W12-10000", "W13-2", "W13-64", "W13-1024", "W13-65536", "W13-1M"}

func workloadRank(w string) int {
	if i := slices.Index(workloadOrder, w); i >= 0 {
		return i
	}
	return len(workloadOrder)
}

// Cases returns the cases of the suite, in workload order, mpipc first.
func Cases() []*Case {
	out := slices.Clone(cases)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := workloadRank(a.Workload), workloadRank(b.Workload); ra != rb {
			return ra < rb
		}
		return a.Ours() && !b.Ours()
	})
	return out
}

// Options configure Run. The zero value runs everything once at full size.
type Options struct {
	// Workloads selects workloads by name ("W1", "W6"; "W6" also selects
	// "W6-4KiB"). Empty means all.
	Workloads []string
	// Runs is the number of runs of every case (default 1). Cases run
	// round-robin: run 1 of every case, then run 2, …
	Runs int
	// Systems, if not empty, keeps only the cases of these systems
	// ("mpipc-queue", "go-os-pipe"): an mpipc figure is then compared
	// only with the peers selected with it.
	Systems []string
	// Scale multiplies every case's N (default 1); 0.01 gives a smoke run.
	Scale float64
	// Progress receives a progress line per case run (default: none).
	Progress io.Writer
	// Result, if set, is called with every run's figures as they come.
	Result func(Result)
}

// ErrNoWorkload is returned when Options.Workloads selects no case.
var ErrNoWorkload = errors.New("bench: no case matches the selected workloads")

// Select returns the cases of the named workloads: "W6" includes "W6-4KiB",
// "=W6" is W6 alone. Names are not case-sensitive.
func Select(workloads []string) ([]*Case, error) {
	all := Cases()
	if len(workloads) == 0 {
		return all, nil
	}
	var out []*Case
	for _, c := range all {
		for _, w := range workloads {
			w = strings.ToUpper(strings.TrimSpace(w))
			exact := strings.HasPrefix(w, "=")
			w = strings.TrimPrefix(w, "=")
			if cw := strings.ToUpper(c.Workload); cw == w || !exact && strings.HasPrefix(cw, w+"-") {
				out = append(out, c)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrNoWorkload, strings.Join(workloads, ","), strings.Join(workloadOrder, ","))
	}
	return out, nil
}

// SelectSystems is Select keeping only the cases of the given systems
// (all if systems is empty).
func SelectSystems(workloads, systems []string) ([]*Case, error) {
	sel, err := Select(workloads)
	if err != nil || len(systems) == 0 {
		return sel, err
	}
	var out []*Case
	for _, c := range sel {
		for _, s := range systems {
			if strings.EqualFold(c.System, strings.TrimSpace(s)) {
				out = append(out, c)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no case of system %q among the selected workloads", ErrNoWorkload, strings.Join(systems, ","))
	}
	return out, nil
}

// ScaledN is max(1, BaseN × scale).
func (c *Case) ScaledN(scale float64) int64 {
	if scale <= 0 {
		scale = 1
	}
	n := int64(float64(c.BaseN) * scale)
	return max(n, 1)
}

// Run runs the selected cases and returns the summaries of their figures,
// in case order. A failed run (a worker's nonzero exit, a result mismatch,
// a timeout) is reported in the returned error, joined with the others; the
// remaining cases still run, and the summaries of what succeeded are
// returned with it.
func Run(opts Options) ([]Summary, error) {
	sel, err := SelectSystems(opts.Workloads, opts.Systems)
	if err != nil {
		return nil, err
	}
	runs := max(opts.Runs, 1)
	prog := newProgress(opts.Progress)
	var order []string
	byKey := map[string]*Summary{}
	var errs []error
	total, done := runs*len(sel), 0
	for rep := 1; rep <= runs; rep++ {
		for _, c := range sel {
			n := c.ScaledN(opts.Scale)
			prog.start(rep, runs, done, total, c, n)
			t0 := time.Now()
			res, err := c.run(n)
			done++
			if err != nil {
				err = fmt.Errorf("run %d of %s (n=%d): %w", rep, c.Label(), n, err)
				errs = append(errs, err)
				prog.fail(err)
				continue
			}
			for _, r := range res {
				if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
					err := fmt.Errorf("run %d of %s: %s is %v", rep, c.Label(), r.Metric, r.Value)
					errs = append(errs, err)
					prog.fail(err)
					continue
				}
				if opts.Result != nil {
					opts.Result(r)
				}
				s := byKey[r.Key()]
				if s == nil {
					s = &Summary{Result: r}
					byKey[r.Key()] = s
					order = append(order, r.Key())
				}
				s.Runs = append(s.Runs, r.Value)
			}
			prog.end(time.Since(t0), res)
		}
	}
	prog.finish()
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		s := byKey[k]
		s.summarize()
		out = append(out, *s)
	}
	return out, errors.Join(errs...)
}

func (s *Summary) summarize() {
	v := slices.Clone(s.Runs)
	slices.Sort(v)
	s.Value = median(v)
	s.Min, s.Max = v[0], v[len(v)-1]
	if s.Value != 0 {
		s.Spread = (s.Max - s.Min) / s.Value
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// WriteJSON writes one line per summary, in the format of the anchors'
// results-*.jsonl (value = median, plus runs, min, max, spread), so that the
// output can itself be merged with -anchors.
func WriteJSON(w io.Writer, sums []Summary) error {
	enc := json.NewEncoder(w)
	for _, s := range sums {
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return nil
}

// progress prints one line per case run: in place on a terminal, one line
// each otherwise.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		p.tty = true
	}
	return p
}

func (p *progress) start(rep, runs, done, total int, c *Case, n int64) {
	if p.w == nil {
		return
	}
	line := fmt.Sprintf("[run %d/%d, %d/%d] %-28s n=%-10d", rep, runs, done+1, total, c.Label(), n)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprint(p.w, line)
	}
}

func (p *progress) end(d time.Duration, res []Result) {
	if p.w == nil {
		return
	}
	first := ""
	if len(res) > 0 {
		first = fmt.Sprintf("%s=%s", res[0].Metric, formatValue(res[0].Value))
	}
	if !p.tty {
		fmt.Fprintf(p.w, " %6.2fs  %s\n", d.Seconds(), first)
	}
}

func (p *progress) fail(err error) {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	} else {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, "!!!!!! FAILED: %v\n", err)
}

func (p *progress) finish() {
	if p.w != nil && p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
