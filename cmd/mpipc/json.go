package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mpipc/mpipc/shm"
)

// The -json forms of ls and stat write JSON Lines: one object per line.
// ls writes one segment record per file listed; stat writes the segment
// record, then one object record per object shown. Names and messages are
// JSON strings as they are (JSON escapes control characters); a name that
// is not valid UTF-8 has its bad bytes replaced by U+FFFD. The fields are
// listed in segmentFields and objectFields (shown by --help).

const segmentFields = `
  record         "segment"
  name           the file name
  path           the file path
  owner          the file owner's uid (-1 if unknown)
  mode           the permission bits, in octal ("0600")
  size           total size in bytes, header included
  used           bytes allocated, header included
  objects        directory entries in use
  maxObjects     directory capacity
  maxProcs       process registry slots
  attached       processes attached now (registry slots whose lock is held)
  processes      the registry slots ever claimed, each with: slot; pid (as
                 the process saw itself, 0 after a clean release); pidns
                 (inode of its pid namespace, 0 if unknown); uid; alive (its
                 slot's lock is held); state ("alive", "dead" or "left");
                 since (RFC 3339)
  creatorPid     pid of the creator, as it saw itself (display only)
  created        creation time, RFC 3339 with nanoseconds ("" if unknown)
  lockHolderPid  pid recorded by the holder of the segment lock, 0 if free
  stale          whether "mpipc rm -stale" would remove it now
  problem        what is wrong with the file, "" if nothing
`

const objectFields = `
  record         "object"
  segment        the segment's path
  name           the object's name
  kind           its kind ("lock", "queue", ...)
  kindVersion    the kind's layout version
  fingerprint    element type fingerprint, 16 hex digits ("" if untyped)
  offset, size   where it lies in the segment, in bytes
  creator        pid of its creator, as it saw itself
  ready          whether its creator finished initializing it
  state          its live state, as stat's table shows it
  value          with -type: its contents, as Go prints them (absent
                 without -type)
`

type segmentJSON struct {
	Record        string        `json:"record"`
	Name          string        `json:"name"`
	Path          string        `json:"path"`
	Owner         int           `json:"owner"`
	Mode          string        `json:"mode"`
	Size          int64         `json:"size"`
	Used          int64         `json:"used"`
	Objects       int           `json:"objects"`
	MaxObjects    int           `json:"maxObjects"`
	MaxProcs      int           `json:"maxProcs"`
	Attached      int           `json:"attached"`
	Processes     []processJSON `json:"processes"`
	CreatorPid    int           `json:"creatorPid"`
	Created       string        `json:"created"`
	LockHolderPid int           `json:"lockHolderPid"`
	Stale         bool          `json:"stale"`
	Problem       string        `json:"problem"`
}

type processJSON struct {
	Slot  int    `json:"slot"`
	Pid   int    `json:"pid"`
	PidNS uint64 `json:"pidns"`
	UID   int    `json:"uid"`
	Alive bool   `json:"alive"`
	State string `json:"state"`
	Since string `json:"since"`
}

type objectJSON struct {
	Record      string  `json:"record"`
	Segment     string  `json:"segment"`
	Name        string  `json:"name"`
	Kind        string  `json:"kind"`
	KindVersion int     `json:"kindVersion"`
	Fingerprint string  `json:"fingerprint"`
	Offset      int64   `json:"offset"`
	Size        int64   `json:"size"`
	Creator     int     `json:"creator"`
	Ready       bool    `json:"ready"`
	State       string  `json:"state"`
	Value       *string `json:"value,omitempty"`
}

// procState names a registry slot's state as stat shows it.
func procState(p shm.Process) string {
	switch {
	case p.Alive:
		return "alive"
	case p.Pid == 0:
		return "left"
	}
	return "dead"
}

func timeJSON(t time.Time) string {
	if t.IsZero() || t.UnixNano() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// segmentRecord describes a segment whose file is base in info.Path;
// problem is what is wrong with it ("" if nothing).
func segmentRecord(base string, info shm.Info, problem string) segmentJSON {
	r := segmentJSON{
		Record:        "segment",
		Name:          base,
		Path:          info.Path,
		Owner:         info.Owner,
		Mode:          fmt.Sprintf("%04o", uint32(info.Mode.Perm())),
		Size:          info.Size,
		Used:          info.Used,
		Objects:       info.NumObjects,
		MaxObjects:    info.MaxObjects,
		MaxProcs:      info.MaxProcs,
		Attached:      info.Attached,
		Processes:     []processJSON{},
		CreatorPid:    info.CreatorPid,
		Created:       timeJSON(info.Created),
		LockHolderPid: info.LockHolder,
		Problem:       problem,
	}
	if info.Size > 0 {
		r.Stale, _ = shm.Stale(info.Path)
	}
	for _, p := range info.Processes {
		r.Processes = append(r.Processes, processJSON{Slot: p.Slot, Pid: p.Pid, PidNS: p.PidNS, UID: p.UID,
			Alive: p.Alive, State: procState(p), Since: timeJSON(p.Since)})
	}
	return r
}

func objectRecord(path string, o shm.Object, state string) objectJSON {
	fp := ""
	if o.Fingerprint != 0 {
		fp = fmt.Sprintf("%016x", o.Fingerprint)
	}
	return objectJSON{Record: "object", Segment: path, Name: o.Name, Kind: o.Kind.String(), KindVersion: int(o.KindVersion),
		Fingerprint: fp, Offset: o.Offset, Size: o.Size, Creator: o.Creator, Ready: o.Ready, State: state}
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the records hold strings and numbers only
	}
	b = append(b, '\n')
	w.Write(b)
}
