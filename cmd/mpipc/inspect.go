package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mpipc/mpipc/barrier"
	"github.com/mpipc/mpipc/condition"
	"github.com/mpipc/mpipc/dict"
	"github.com/mpipc/mpipc/event"
	"github.com/mpipc/mpipc/lock"
	"github.com/mpipc/mpipc/ringbuf"
	"github.com/mpipc/mpipc/rlock"
	"github.com/mpipc/mpipc/semaphore"
	"github.com/mpipc/mpipc/shm"
)

// segPath turns a SEGMENT argument into a file path: a plain name is looked
// up in /dev/shm, anything with a slash is a path.
func segPath(arg string) (string, error) {
	if strings.ContainsRune(arg, '/') {
		return filepath.Abs(arg)
	}
	return shm.Resolve(arg, nil)
}

// problem describes what Inspect found wrong with a file, and what to do.
func problem(err error) string {
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return "no such file"
	case errors.Is(err, shm.ErrPermission) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM):
		return "unsafe: " + text(err.Error())
	case errors.Is(err, iofs.ErrPermission):
		return "permission denied (run as the file's owner)"
	case errors.Is(err, shm.ErrNotSegment):
		return "not an mpipc segment (foreign file, or a creator died before publishing the header)"
	case errors.Is(err, shm.ErrVersion):
		return "unsupported segment layout version (written by another mpipc version)"
	case errors.Is(err, shm.ErrChecksum):
		return "corrupt: header checksum mismatch"
	case errors.Is(err, shm.ErrTruncated):
		return "corrupt: file shorter than its header says (truncated)"
	case errors.Is(err, shm.ErrCorrupt):
		return "corrupt: " + text(err.Error())
	}
	return text(err.Error())
}

// pidDesc describes a recorded pid. It says nothing of liveness: a pid
// may name a process of another pid namespace, or a reused one; liveness
// comes from the segment's process registry (see "processes" in stat).
func pidDesc(pid int) string {
	if pid == 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

func runLs(c *cli, args []string) int {
	fs := c.flags("ls")
	all := fs.Bool("a", false, "also list files that are not mpipc segments")
	asJSON := fs.Bool("json", false, "write one JSON object per segment, one per line (fields: see --help)")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 1 {
		return c.usageErr(fs, "at most one directory, got %d arguments", fs.NArg())
	}
	dir := shm.DefaultDir
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return c.fail("ls: reading directory %s: %s", name(dir), text(err.Error()))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tSIZE\tUSED\tOBJECTS\tATTACHED\tCREATOR\tCREATED\tPROBLEM")
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() && !*all {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := shm.Inspect(path)
		if err != nil && info.Size == 0 { // header unreadable
			if !*all && (errors.Is(err, shm.ErrNotSegment) || errors.Is(err, iofs.ErrPermission) || !e.Type().IsRegular()) {
				continue
			}
			if *asJSON {
				info.Path = path
				writeJSON(c.stdout, segmentRecord(e.Name(), info, problem(err)))
			} else {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", name(e.Name()), problem(err))
			}
			n++
			continue
		}
		p := "-"
		switch {
		case err != nil:
			p = problem(err)
		case info.Err != nil:
			p = problem(info.Err)
		case info.Unsafe != nil:
			p = problem(info.Unsafe)
		}
		if *asJSON {
			pj := p
			if pj == "-" {
				pj = ""
			}
			writeJSON(c.stdout, segmentRecord(e.Name(), info, pj))
			n++
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", name(e.Name()), ownerDesc(info.Owner, info.Mode, info.Unsafe),
			bytesize(info.Size), bytesize(info.Used),
			info.NumObjects, info.MaxObjects, info.Attached, pidDesc(info.CreatorPid), info.Created.Format(time.DateTime), p)
		n++
	}
	if *asJSON {
		return exitOK
	}
	if n == 0 {
		fmt.Fprintf(c.stdout, "no mpipc segments in %s\n", name(dir))
		return exitOK
	}
	tw.Flush()
	return exitOK
}

func bytesize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}

func runStat(c *cli, args []string) int {
	fs := c.flags("stat")
	asJSON := fs.Bool("json", false, "write the segment, then each object, as one JSON object per line (fields: see --help)")
	typ := fs.String("type", "", "show OBJECT's contents, a Value or Array of this element type in Go syntax (int64, float64, ...)")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return c.usageErr(fs, "want SEGMENT [OBJECT], got %d arguments", fs.NArg())
	}
	var rd contents
	if *typ != "" {
		if fs.NArg() != 2 {
			return c.usageErr(fs, "-type needs an OBJECT")
		}
		var err error
		if rd, err = parseType(*typ); err != nil {
			return c.usageErr(fs, "-type %s", text(err.Error()))
		}
	}
	path, err := segPath(fs.Arg(0))
	if err != nil {
		return c.fail("stat: %s: %s", name(fs.Arg(0)), text(err.Error()))
	}
	info, err := shm.Inspect(path)
	if err != nil && info.Size == 0 {
		return c.fail("stat: %s: %s\n(%s)", name(path), problem(err), text(err.Error()))
	}
	if *asJSON {
		return c.statJSON(fs, path, info, err, *typ, rd)
	}
	w := c.stdout
	fmt.Fprintf(w, "segment   %s\n", name(path))
	fmt.Fprintf(w, "owner     %s", ownerDesc(info.Owner, info.Mode, info.Unsafe))
	if info.Unsafe != nil {
		fmt.Fprintf(w, ": %s (not mapped)", problem(info.Unsafe))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "version   %d\n", info.Version)
	fmt.Fprintf(w, "size      %d bytes, %d used, header %d\n", info.Size, info.Used, info.HeaderSize)
	fmt.Fprintf(w, "creator   pid %s, %s\n", pidDesc(info.CreatorPid), info.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "objects   %d of %d\n", info.NumObjects, info.MaxObjects)
	fmt.Fprintf(w, "attached  %d processes (registry of %d slots)\n", info.Attached, info.MaxProcs)
	if info.LockHolder != 0 {
		fmt.Fprintf(w, "seg lock  held by pid %s\n", pidDesc(info.LockHolder))
	} else {
		fmt.Fprintln(w, "seg lock  free")
	}
	seg, bad := openLive(path, info, err)
	if seg != nil {
		defer seg.Close()
	}
	if len(info.Processes) > 0 {
		fmt.Fprintln(w)
		ptw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(ptw, "SLOT\tPID\tPIDNS\tUID\tSTATE\tSINCE")
		for _, p := range info.Processes {
			state := procState(p)
			ns := "-"
			if p.PidNS != 0 {
				ns = fmt.Sprintf("pid:[%d]", p.PidNS)
			}
			fmt.Fprintf(ptw, "%d\t%s\t%s\t%d\t%s\t%s\n", p.Slot, pidDesc(p.Pid), ns, p.UID, state, p.Since.Format(time.RFC3339))
		}
		ptw.Flush()
	}
	var found bool
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tKIND\tTYPE\tOFFSET\tSIZE\tCREATOR\tSTATE")
	for _, o := range info.Objects {
		if !wanted(fs, o) {
			continue
		}
		found = true
		typ := "-"
		if o.Fingerprint != 0 {
			typ = fmt.Sprintf("%016x", o.Fingerprint)
		}
		state := objectState(seg, o)
		fmt.Fprintf(tw, "%s\t%s v%d\t%s\t%d\t%d\t%d\t%s\n", name(o.Name), o.Kind, o.KindVersion, typ, o.Offset, o.Size, o.Creator, state)
	}
	tw.Flush()
	if seg != nil && rd != nil {
		for _, o := range info.Objects {
			if !wanted(fs, o) {
				continue
			}
			v, err := rd(seg, o)
			if err != nil {
				return c.fail("stat: %s: %s", name(path), typeErr(o, *typ, err))
			}
			fmt.Fprintf(w, "\nVALUE OF %s (%s)\n  %s\n", name(o.Name), name(*typ), v)
		}
	}
	if seg != nil {
		for _, o := range info.Objects {
			if o.Kind == shm.KindDict && o.Ready && (fs.NArg() == 1 || o.Name == fs.Arg(1)) {
				dictKeys(w, seg, o.Name)
			}
		}
	}
	if bad != nil {
		return c.fail("stat: %s: %s\n(%s)", name(path), problem(bad), text(bad.Error()))
	}
	if fs.NArg() == 2 && !found {
		return c.fail("stat: %s: no object named %q (run 'mpipc stat %s' to list them)", name(path), fs.Arg(1), name(fs.Arg(0)))
	}
	return exitOK
}

// openLive maps the segment at path for the live state of its objects,
// unless Inspect found a problem (inspectErr, or in info): it returns the
// segment, or nil and what is wrong.
func openLive(path string, info shm.Info, inspectErr error) (*shm.Segment, error) {
	bad := inspectErr
	if bad == nil {
		bad = info.Err
	}
	if bad == nil {
		bad = info.Unsafe // never map a file another user can truncate
	}
	if bad != nil {
		return nil, bad
	}
	// Inspect has validated the header.
	return shm.Open(path, nil)
}

// objectState is the state stat shows for o.
func objectState(seg *shm.Segment, o shm.Object) string {
	switch {
	case !o.Ready:
		return "initializing"
	case seg == nil:
		return "(segment not mapped)"
	}
	return liveState(seg, o)
}

// wanted reports whether stat's OBJECT arguments select o.
func wanted(fs *flag.FlagSet, o shm.Object) bool {
	return fs.NArg() < 2 || o.Name == fs.Arg(1) || name(o.Name) == fs.Arg(1)
}

// statJSON is stat -json: the segment record, then one record per object.
func (c *cli) statJSON(fs *flag.FlagSet, path string, info shm.Info, inspectErr error, typ string, rd contents) int {
	seg, bad := openLive(path, info, inspectErr)
	if seg != nil {
		defer seg.Close()
	}
	p := ""
	if bad != nil {
		p = problem(bad)
	}
	writeJSON(c.stdout, segmentRecord(filepath.Base(path), info, p))
	var found bool
	for _, o := range info.Objects {
		if !wanted(fs, o) {
			continue
		}
		found = true
		r := objectRecord(path, o, objectState(seg, o))
		if rd != nil && seg != nil {
			v, err := rd(seg, o)
			if err != nil {
				return c.fail("stat: %s: %s", name(path), typeErr(o, typ, err))
			}
			r.Value = &v
		}
		writeJSON(c.stdout, r)
	}
	if bad != nil {
		return c.fail("stat: %s: %s\n(%s)", name(path), problem(bad), text(bad.Error()))
	}
	if fs.NArg() == 2 && !found {
		return c.fail("stat: %s: no object named %q (run 'mpipc stat %s' to list them)", name(path), fs.Arg(1), name(fs.Arg(0)))
	}
	return exitOK
}

// liveState opens o through its package and describes its State().
func liveState(seg *shm.Segment, o shm.Object) string {
	d, ok := describers[o.Kind]
	if !ok {
		return "(no live state for this kind)"
	}
	s, err := d(seg, o.Name)
	if err != nil {
		return "cannot open: " + text(err.Error())
	}
	return s
}

// describers open an object by name and describe its live state.
var describers = map[shm.Kind]func(seg *shm.Segment, name string) (string, error){
	shm.KindLock: func(seg *shm.Segment, name string) (string, error) {
		l, err := lock.Open(seg, name, nil)
		if err != nil {
			return "", err
		}
		st := l.State()
		return holderState(st.Held, st.HolderPid, st.HolderAlive, st.Waiters, st.Inconsistent, st.NotRecoverable, ""), nil
	},
	shm.KindRLock: func(seg *shm.Segment, name string) (string, error) {
		l, err := rlock.Open(seg, name, nil)
		if err != nil {
			return "", err
		}
		st := l.State()
		extra := ""
		if st.Held {
			extra = fmt.Sprintf("level %d, goroutine %d", st.Level, st.HolderGoid)
		}
		return holderState(st.Held, st.HolderPid, st.HolderAlive, st.Waiters, st.Inconsistent, st.NotRecoverable, extra), nil
	},
	shm.KindSemaphore:        semState,
	shm.KindBoundedSemaphore: semState,
	shm.KindEvent: func(seg *shm.Segment, name string) (string, error) {
		e, err := event.Open(seg, name, nil)
		if err != nil {
			return "", err
		}
		st := e.State()
		s := "clear"
		if st.Set {
			s = "set"
		}
		s += fmt.Sprintf(", generation %d", st.Generation)
		if st.Waiters {
			s += ", waiters"
		}
		return s, nil
	},
	shm.KindCondition: func(seg *shm.Segment, name string) (string, error) {
		c, err := condition.Open(seg, name, nil)
		if err != nil {
			return "", err
		}
		st := c.State()
		extra := fmt.Sprintf("%d waiting, %d notified (%d slots)", st.Waiters, st.Notified, st.Slots)
		return "lock " + holderState(st.Held, st.HolderPid, st.HolderAlive, false, false, false, "") + ", " + extra, nil
	},
	shm.KindValue: func(seg *shm.Segment, name string) (string, error) {
		return "(typed: open it with its element type to read it)", nil
	},
	shm.KindBarrier: func(seg *shm.Segment, name string) (string, error) {
		b, err := barrier.Open(seg, name, &barrier.Options{Observe: true}) // registers nothing
		if err != nil {
			return "", err
		}
		defer b.Close()
		st := b.State()
		s := fmt.Sprintf("%d parties, %d waiting, round %d", st.Parties, st.Waiting, st.Rounds)
		if st.Draining {
			s += ", draining"
		}
		if st.Broken {
			s += ", BROKEN (every Wait fails until Reset)"
		}
		return s, nil
	},
	shm.KindDict: dictState,
	shm.KindQueue: func(seg *shm.Segment, name string) (string, error) {
		q, err := ringbuf.Open(seg, name, nil)
		if err != nil {
			return "", err
		}
		return queueState(q.State(), false), nil
	},
	shm.KindJoinableQueue: func(seg *shm.Segment, name string) (string, error) {
		q, err := ringbuf.OpenJoinable(seg, name, nil)
		if err != nil {
			return "", err
		}
		return queueState(q.State(), true), nil
	},
}

// Bounds on the keys stat shows for a bytes-keyed Dict.
const (
	statKeys   = 16
	statKeyLen = 40
)

func dictState(seg *shm.Segment, name string) (string, error) {
	sum, err := dict.Inspect(seg, name, statKeys, statKeyLen)
	if err != nil {
		return "", err
	}
	form := fmt.Sprintf("%d-byte keys, %d-byte values", sum.KeyBytes, sum.ValueBytes)
	if sum.Bytes {
		form = fmt.Sprintf("bytes: keys up to %d, values up to %d bytes", sum.KeyBytes, sum.ValueBytes)
	}
	s := fmt.Sprintf("%d entries (capacity %d, %s), %d stripes", sum.Len, sum.Capacity, form, sum.Stripes)
	for _, h := range sum.Held {
		s += fmt.Sprintf(", stripe %d held by pid %d", h.Stripe, h.HolderPid)
		if h.Inconsistent {
			s += " (repairing)"
		}
	}
	return s, nil
}

// dictKeys prints the first keys of a bytes-keyed Dict, quoted, one per
// line, under the object table.
func dictKeys(w io.Writer, seg *shm.Segment, name string) {
	sum, err := dict.Inspect(seg, name, statKeys, statKeyLen)
	if err != nil || !sum.Bytes {
		return
	}
	fmt.Fprintf(w, "\nKEYS OF %s (%d of %d shown, at most %d bytes each)\n", name, len(sum.Keys), len(sum.Keys)+sum.MoreKeys, statKeyLen)
	for _, k := range sum.Keys {
		fmt.Fprintf(w, "  %s\n", strconv.Quote(string(k)))
	}
}

func queueState(st ringbuf.State, joinable bool) string {
	s := fmt.Sprintf("%d/%d messages (max %d bytes)", st.Len, st.Cap, st.MaxMsgSize)
	if st.Shutdown {
		s += ", shut down"
	}
	if joinable {
		s += fmt.Sprintf(", %d unfinished tasks (%d taken)", st.Unfinished, st.Taken)
		if st.JoinWaiters > 0 {
			s += fmt.Sprintf(", %d joiners waiting", st.JoinWaiters)
		}
	}
	if st.GetWaiters > 0 || st.PutWaiters > 0 {
		s += fmt.Sprintf(", waiters: %d getters, %d putters", st.GetWaiters, st.PutWaiters)
	}
	return s
}

func semState(seg *shm.Segment, name string) (string, error) {
	var st semaphore.State
	if s, err := semaphore.Open(seg, name, nil); err == nil {
		st = s.State()
	} else if b, berr := semaphore.OpenBounded(seg, name, nil); berr == nil {
		st = b.State()
	} else {
		return "", err
	}
	s := fmt.Sprintf("value %d", st.Value)
	if st.Bounded {
		s += fmt.Sprintf(" (bound %d)", st.Bound)
	}
	if st.Waiters {
		s += ", waiters"
	}
	return s, nil
}

func holderState(held bool, pid int, live, waiters, inconsistent, notRecoverable bool, extra string) string {
	var parts []string
	switch {
	case notRecoverable:
		parts = append(parts, "NOT RECOVERABLE (released without Consistent after its owner died)")
	case !held:
		parts = append(parts, "free")
	case live:
		parts = append(parts, fmt.Sprintf("held by pid %d (alive)", pid))
	default:
		parts = append(parts, fmt.Sprintf("held by pid %d (DEAD: the next acquirer gets ErrOwnerDead)", pid))
	}
	if extra != "" {
		parts = append(parts, extra)
	}
	if inconsistent {
		parts = append(parts, "inconsistent (owner died; repair pending)")
	}
	if waiters {
		parts = append(parts, "waiters")
	}
	return strings.Join(parts, ", ")
}

func runRm(c *cli, args []string) int {
	fs := c.flags("rm")
	force := fs.Bool("f", false, "remove files even if they are not mpipc segments")
	stale := fs.Bool("stale", false, "remove the stale segments of DIR (default /dev/shm) instead")
	grace := fs.Duration("grace", shm.StaleGrace, "with -stale: keep segments created less than this long ago")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if *stale {
		if *force {
			return c.usageErr(fs, "-f and -stale do not go together")
		}
		if fs.NArg() > 1 {
			return c.usageErr(fs, "with -stale: at most one directory, got %d arguments", fs.NArg())
		}
		dir := shm.DefaultDir
		if fs.NArg() == 1 {
			dir = fs.Arg(0)
		}
		return c.rmStale(dir, *grace)
	}
	if fs.NArg() == 0 {
		return c.usageErr(fs, "no SEGMENT given")
	}
	rc := exitOK
	for _, arg := range fs.Args() {
		if err := rmOne(c.stdout, arg, *force); err != nil {
			c.fail("rm: %s", text(err.Error()))
			rc = exitFail
		}
	}
	return rc
}

func rmOne(w io.Writer, arg string, force bool) error {
	path, err := segPath(arg)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() && !force {
		return fmt.Errorf("%s: not a regular file (%s); not removed (use -f to remove it anyway)", path, fi.Mode().Type())
	}
	_, err = shm.Inspect(path)
	switch {
	case err == nil:
	case errors.Is(err, shm.ErrNotSegment) || !fi.Mode().IsRegular():
		if !force {
			return fmt.Errorf("%s: %s; not removed (use -f to remove it anyway)", path, problem(err))
		}
	case errors.Is(err, iofs.ErrPermission):
		return fmt.Errorf("%s: cannot read it to check that it is a segment: %w", path, err)
	default:
		// A damaged mpipc segment: removing it is what one wants.
		fmt.Fprintf(w, "%s: %s\n", name(path), problem(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: is a directory; not removed", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	fmt.Fprintf(w, "removed %s\n", name(path))
	return nil
}

// rmStale removes the stale segments of dir (see shm.StaleAfter), and
// nothing else: not a segment in use, not a damaged segment, not a file
// that is not a segment.
func (c *cli) rmStale(dir string, grace time.Duration) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return c.fail("rm: reading directory %s: %s", name(dir), text(err.Error()))
	}
	rc, n := exitOK, 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		before, err := os.Lstat(path)
		if err != nil {
			continue // gone meanwhile
		}
		stale, err := shm.StaleAfter(path, grace)
		if err != nil || !stale {
			continue // in use, or not a segment this command may judge
		}
		// The file must still be the one judged (not replaced by a new
		// segment of the same name in the meantime).
		after, err := os.Lstat(path)
		if err != nil || !os.SameFile(before, after) {
			continue
		}
		if err := os.Remove(path); err != nil {
			c.fail("rm: removing %s: %s", name(path), text(err.Error()))
			rc = exitFail
			continue
		}
		fmt.Fprintf(c.stdout, "removed %s\n", name(path))
		n++
	}
	if n == 0 && rc == exitOK {
		fmt.Fprintf(c.stdout, "no stale segments in %s\n", name(dir))
	}
	return rc
}
