package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// LowerIsBetter reports whether a smaller value of metric is better
// (times, latencies) rather than a larger one (rates, bandwidths).
func LowerIsBetter(metric string) bool {
	return strings.HasPrefix(metric, "ns_") || strings.HasPrefix(metric, "us_") || strings.HasSuffix(metric, "_us")
}

// Ratio is how many times better ours is than peer: ours/peer for rates,
// peer/ours for times. Above 1, mpipc is better.
func Ratio(metric string, ours, peer float64) float64 {
	if LowerIsBetter(metric) {
		return peer / ours
	}
	return ours / peer
}

// anchorPeers names, per workload and mpipc system, the anchors a figure is
// compared with: the best of each list present in the anchors file (C
// first, then Python).
var anchorPeers = map[string][][]string{
	"W1 mpipc-lock":             {{"c-futex-mutex"}, {"py-mp-lock"}},
	"W1 mpipc-rlock":            {{"c-futex-mutex"}, {"py-mp-lock"}},
	"W1 mpipc-semaphore":        {{"c-sem"}, {"py-mp-lock"}},
	"W2 mpipc-lock":             {{"c-futex-mutex", "c-pthread-mutex", "c-sem"}, {"py-mp-value"}},
	"W2 mpipc-value":            {{"c-futex-mutex", "c-pthread-mutex", "c-sem"}, {"py-mp-value"}},
	"W3 mpipc-semaphore":        {{"c-futex-spin", "c-futex", "c-sem"}, {"py-mp-semaphore"}},
	"W4 mpipc-condition":        {{"c-pthread-cond"}, {"py-mp-condition"}},
	"W4 mpipc-event":            {{"c-pthread-cond"}, {"py-mp-event"}},
	"W5 mpipc-barrier":          {{"c-pthread-barrier"}, {"py-mp-barrier"}},
	"W6 mpipc-queue":            {{"c-mpmc-ring"}, {"py-mp-queue", "py-mp-simplequeue"}},
	"W6 mpipc-pipe":             {{"c-spsc-ring"}, {"py-mp-pipe"}},
	"W6-4KiB mpipc-queue":       {{"c-mpmc-ring"}},
	"W6-4KiB mpipc-pipe":        {{"c-spsc-ring"}},
	"W7 mpipc-queue":            {{"c-mpmc-ring"}, {"py-mp-queue"}},
	"W8 mpipc-queue":            {{"c-ring-spin-futex"}, {"py-mp-queue"}},
	"W8 mpipc-pipe":             {{"c-ring-spin-futex"}, {"py-mp-pipe"}},
	"W9 mpipc-array":            {{"c-plain"}, {"py-mp-array-slice", "py-mp-array-loop"}},
	"W9 mpipc-rawarray":         {{"c-plain"}, {"py-mp-array-slice", "py-mp-array-loop"}},
	"W11 mpipc-pool-map":        {{"c-fork-pool-pipe"}, {"py-mp-pool-map"}},
	"W11 mpipc-pool-map-chunk1": {{"c-fork-pool-pipe"}, {"py-mp-pool-map-chunk1", "py-cf-process-pool"}},
	"W11 mpipc-pool-submit":     {{"c-fork-pool-pipe"}, {"py-mp-pool-apply-async"}},
	"W10 mpipc-dict":            {{"c-shm-dict-seqlock", "c-shm-dict-mutex"}, {"py-mp-manager-dict"}},
	"W10-1p mpipc-dict":         {{"c-shm-dict-seqlock", "c-shm-dict-mutex"}, {"py-mp-manager-dict"}},
}

// scaleBase names, for the scale workloads, the workload of the same
// system measured in the same run that each is compared with: the ratio
// then says how the figure holds up as the work grows (W7-8x8 against W7's
// 2+2, Open among 10,000 objects against 10). The base workloads
// themselves (W12-10, W13-1024) have no C anchor of their own.
var scaleBase = map[string]string{
	"W2-8p":     "W2",
	"W7-4x4":    "W7",
	"W7-8x8":    "W7",
	"W12-1000":  "W12-10",
	"W12-10000": "W12-10",
	"W13-2":     "W13-1024",
	"W13-64":    "W13-1024",
	"W13-65536": "W13-1024",
	"W13-1M":    "W13-1024",
}

// ReadAnchors reads a results-*.jsonl (or .raw.jsonl) file written by the
// anchors' run.sh, or the -json output of this suite, and returns one
// summary per (workload, system, metric). Source is set to the file's base
// name.
func ReadAnchors(path string) ([]Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading anchors: %w", err)
	}
	defer f.Close()
	var order []string
	byKey := map[string]*Summary{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(text, "{") {
			continue
		}
		var s Summary
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			return nil, fmt.Errorf("%s:%d: not a results line: %w", path, line, err)
		}
		if s.Workload == "" || s.System == "" || s.Metric == "" {
			return nil, fmt.Errorf("%s:%d: results line without workload, system or metric", path, line)
		}
		runs := s.Runs
		if len(runs) == 0 {
			runs = []float64{s.Value}
		}
		k := s.Key()
		old := byKey[k]
		if old == nil {
			s.Runs = nil
			old = &s
			byKey[k] = old
			order = append(order, k)
		}
		old.Runs = append(old.Runs, runs...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("%s: no results lines (expected run.sh's results-*.jsonl)", path)
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		s := byKey[k]
		s.summarize()
		s.Source = filepath.Base(path)
		out = append(out, *s)
	}
	return out, nil
}

// Row is one line of the comparison table: one of our figures against one
// peer.
type Row struct {
	Ours Summary
	Peer *Summary // nil: no peer measured for this figure
	// Ratio is Ratio(metric, ours, peer) on the medians; NaN without a peer.
	Ratio float64
}

// Compare pairs every mpipc figure with the peers of its workload and
// metric measured in this run (go-…), a scale workload's figure with its
// base workload's (scaleBase), and with the best relevant anchors (C, then
// Python) from anchors, if given.
func Compare(sums, anchors []Summary) []Row {
	var rows []Row
	for _, o := range sums {
		if !strings.HasPrefix(o.System, "mpipc-") {
			continue
		}
		var peers []*Summary
		for i := range sums {
			p := &sums[i]
			if !strings.HasPrefix(p.System, "mpipc-") && p.Workload == o.Workload && p.Metric == o.Metric {
				peers = append(peers, p)
			}
		}
		if base, ok := scaleBase[o.Workload]; ok {
			for i := range sums {
				if p := &sums[i]; p.Workload == base && p.System == o.System && p.Metric == o.Metric {
					peers = append(peers, p)
				}
			}
		}
		for _, group := range anchorPeers[o.Workload+" "+o.System] {
			if p := best(anchors, o.Workload, o.Metric, group); p != nil {
				peers = append(peers, p)
			}
		}
		if len(peers) == 0 {
			rows = append(rows, Row{Ours: o, Ratio: math.NaN()})
			continue
		}
		for _, p := range peers {
			rows = append(rows, Row{Ours: o, Peer: p, Ratio: Ratio(o.Metric, o.Value, p.Value)})
		}
	}
	return rows
}

// best returns the best figure among systems in sums for workload and
// metric, or nil.
func best(sums []Summary, workload, metric string, systems []string) *Summary {
	var b *Summary
	for i := range sums {
		s := &sums[i]
		if s.Workload != workload || s.Metric != metric || !slices.Contains(systems, s.System) {
			continue
		}
		if b == nil || Ratio(metric, s.Value, b.Value) > 1 {
			b = s
		}
	}
	return b
}

// WriteTable writes the comparison table: each mpipc figure (median of the
// runs, with min and max) next to each peer and the ratio (above 1: mpipc
// better).
func WriteTable(w io.Writer, sums, anchors []Summary) error {
	t := table{head: []string{"workload", "metric", "ours", "median", "min–max", "runs", "peer", "peer median", "ratio"},
		right: []bool{false, false, false, true, true, true, false, true, true}}
	last := ""
	for _, r := range Compare(sums, anchors) {
		k := r.Ours.Key()
		row := []string{r.Ours.Workload, r.Ours.Metric, r.Ours.System, formatValue(r.Ours.Value),
			formatValue(r.Ours.Min) + "–" + formatValue(r.Ours.Max), fmt.Sprint(len(r.Ours.Runs)), "–", "–", "–"}
		if k == last { // further peers of the same figure
			for i := range 6 {
				row[i] = ""
			}
		}
		last = k
		if r.Peer != nil {
			row[6] = r.Peer.System
			if r.Peer.Workload != r.Ours.Workload {
				row[6] += " (" + r.Peer.Workload + ")"
			}
			if r.Peer.Source != "" {
				row[6] += " (anchors)"
			}
			row[7] = formatValue(r.Peer.Value)
			row[8] = fmt.Sprintf("%.2f×", r.Ratio)
		}
		t.rows = append(t.rows, row)
	}
	if err := t.write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "ratio: how many times better mpipc is than the peer (>1: mpipc faster), on medians.")
	return err
}

// WritePeers writes the figures of the peers measured in this run.
func WritePeers(w io.Writer, sums []Summary) error {
	t := table{head: []string{"workload", "system", "metric", "median", "min–max", "runs"},
		right: []bool{false, false, false, true, true, true}}
	for _, s := range sums {
		if strings.HasPrefix(s.System, "mpipc-") {
			continue
		}
		t.rows = append(t.rows, []string{s.Workload, s.System, s.Metric, formatValue(s.Value),
			formatValue(s.Min) + "–" + formatValue(s.Max), fmt.Sprint(len(s.Runs))})
	}
	if len(t.rows) == 0 {
		return nil
	}
	return t.write(w)
}

// table aligns columns by runes (tabwriter counts bytes, and the table has
// "–" and "×" in it).
type table struct {
	head  []string
	right []bool
	rows  [][]string
}

func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range append([][]string{t.head}, t.rows...) {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatValue prints a figure with 3–4 significant digits, as the anchors'
// tables do.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "NaN"
	case a >= 1000:
		return commas(int64(math.Round(v)))
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func commas(v int64) string {
	s := fmt.Sprint(v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
