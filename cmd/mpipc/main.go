// Command mpipc shows, measures and inspects mpipc's shared-memory IPC:
//
//	mpipc demo                       a pool of worker processes, one of them killed mid-run
//	mpipc bench [-w W1,W6] [-n runs] [-json] [-scale f] [-anchors file]
//	mpipc ls [-a] [-json] [dir]      the segments in a directory (default /dev/shm)
//	mpipc stat [-json] SEGMENT [OBJECT [-type T]]
//	                                 a segment's header and objects, with their live state
//	mpipc rm [-f] SEGMENT...         remove segments
//	mpipc rm -stale [-grace d] [DIR] remove the segments nobody is attached to
//
// Flags may come before or after arguments (mpipc rm SEG -f); "--" ends
// the flags.
//
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mpipc/mpipc/process"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type verb struct {
	name, args, summary string
	run                 func(c *cli, args []string) int
}

var verbs []verb

func init() {
	verbs = []verb{
		{"demo", "[-workers n] [-tasks n] [-kill=false]", "run a pool of worker processes, kill one mid-run and watch the pool recover", runDemo},
		{"bench", "[-w W1,W6] [-n runs] [-json] [-scale f] [-anchors file]", "run the cross-process benchmark suite with its peers", runBench},
		{"ls", "[-a] [-json] [dir]", "list the mpipc segments in a directory (default /dev/shm)", runLs},
		{"stat", "[-json] SEGMENT [OBJECT [-type T]]", "show a segment's header and objects with their live state", runStat},
		{"rm", "[-f] SEGMENT... | -stale [-grace d] [DIR]", "remove segments (refuses files that are not mpipc segments unless -f), or the stale ones", runRm},
		{"destroy", "[-f] SEGMENT OBJECT...", "destroy objects in a segment, freeing their space (refuses objects in use unless -f)", runDestroy},
	}
}

// cli carries the streams of one invocation, so that tests can run verbs
// in process.
type cli struct {
	stdout, stderr io.Writer
}

func main() {
	process.Main() // the benchmark (bench) and the demo re-execute this binary for their workers
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		c.usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		c.usage(stdout)
		return exitOK
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(c, args[1:])
		}
	}
	fmt.Fprintf(stderr, "mpipc: unknown command %q\n\n", args[0])
	c.usage(stderr)
	return exitUsage
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mpipc COMMAND [flags] [args]")
	fmt.Fprintln(w, "\nmpipc shows, measures and inspects shared-memory IPC between processes.\n\ncommands:")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-6s %s\n", v.name, v.summary)
	}
	fmt.Fprintln(w, "\nRun 'mpipc COMMAND --help' for a command's flags.")
}

// flags returns a FlagSet for verb whose usage names its arguments.
func (c *cli) flags(name string) *flag.FlagSet {
	var v verb
	for _, x := range verbs {
		if x.name == name {
			v = x
		}
	}
	fs := flag.NewFlagSet("mpipc "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: mpipc %s %s\n\n%s.\n", v.name, v.args, upperFirst(v.summary))
		if help := verbHelp[name]; help != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(help))
		}
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, flags anywhere among the arguments (rm SEG -f); an
// argument "--" ends the flags. It returns -1 to go on, or the exit code:
// 0 after --help (usage on stdout), 2 on a usage error.
func (c *cli) parse(fs *flag.FlagSet, args []string) int {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, once, on the right stream
	err := parseInterspersed(fs, args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(c.stdout)
		fs.Usage()
		return exitOK
	}
	if err != nil { // the flag package has printed what is wrong
		fs.Usage()
		return exitUsage
	}
	return -1
}

// parseInterspersed is fs.Parse with flags allowed after arguments: it
// parses up to the first argument, sets it aside and goes on. After "--"
// everything is an argument. fs.Args() are the arguments in their order.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...) // the flag package stopped at "--"
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// usageErr reports a usage error of verb fs and returns exitUsage.
func (c *cli) usageErr(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}

// fail reports a failure and returns exitFail.
func (c *cli) fail(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "mpipc: "+format+"\n", args...)
	return exitFail
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var verbHelp = map[string]string{
	"demo": `
Starts a pool of worker processes (this binary, re-executed) and has them
square the tasks in two phases: Map (results in order), then MapUnordered
(results as they come). Each worker counts the tasks it starts in a shared
value. Midway through phase 2 one worker is SIGKILLed (-kill=false: not);
the pool replaces it and runs its task again. The parent prints what each
worker did and checks every result. The segment is removed at the end, also
on SIGINT or SIGTERM.`,
	"bench": `
Runs workloads W1..W11 (each described by 'go doc github.com/mpipc/mpipc/bench')
with mpipc and with peers measured in the same run (sync.Mutex and channels in
one process; os.Pipe and unix SOCK_SEQPACKET sockets across processes). Every
case starts its workers as separate processes (this binary, re-executed),
releases them together and checks its result. Cases run round-robin over the
runs; the table shows the median over the runs with min and max, and the ratio
to each peer (above 1: mpipc better). -anchors merges a results-*.jsonl file
written by the anchors' run.sh (C and Python figures) as further peers.`,
	"ls": `
Lists the mpipc segments in DIR (default /dev/shm): size, bytes used, objects,
creator pid and creation time. Files that are not mpipc segments are skipped
unless -a is given; damaged segments are listed with what is wrong.

With -json, writes one JSON object per segment, one per line, with the fields
` + segmentFields + "`",
	"stat": `
Prints a segment's header and its objects: name, kind, type fingerprint, size,
and each object's live state (lock holder and whether it is alive, waiters,
semaphore value, barrier round, queue length, event flag). SEGMENT is a name in
/dev/shm or a path. On a damaged or foreign file it says what is wrong and
exits 1.

With -type T and an OBJECT that is a Value[T] or an Array[T], shows its
contents: T is the element type in Go syntax, one of bool, int8, int16,
int32, int64, uint8, uint16, uint32, uint64, float32, float64, or an array
of them, nested or not ([4]float64, [2][3]int32). The object's recorded
type must match (else it says so, with both sizes, and exits 1). A Value is read as Load reads it; an Array's first 64
elements are read without taking its lock.

Contention counters (waits, wakes, timeouts, owner deaths, spins that
ended in sleep) are kept per process, in each handle, never in the
segment, so stat cannot show them: a service reads its own from each
handle's Stats method or the expvar variable "mpipc" (import package
stats/statsvar).

With -json, writes JSON Lines: first the segment, with the fields
` + segmentFields + `
then one line per object, with the fields
` + objectFields,
	"rm": `
Removes segments. SEGMENT is a name in /dev/shm or a path. A file that is not
an mpipc segment is left alone unless -f is given. Processes that have the
segment mapped keep using it until they close it.

With -stale, removes the stale segments of DIR (default /dev/shm) and prints
each one removed. A segment is stale when no live process holds a slot in its
process registry (each slot's lock is asked with F_OFD_GETLK, as the library
decides liveness; a stopped process, or one in another pid namespace, is
alive) and it was created at least -grace ago (default 1m: its creator may be
between publishing the header and claiming its slot). A segment whose header
is not yet published, a damaged segment and a file that is not a segment are
never removed by -stale. A segment created and closed without anyone else
attaching is stale once -grace has passed. A process that opens a segment at
the moment -stale removes it keeps a file nobody else finds: run it when no
process is about to open the segments it may remove.`,
}
