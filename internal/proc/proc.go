// Package proc identifies processes in a way that survives pid reuse, and
// tells whether a recorded process is still alive.
//
// An identity is the pair (pid, start tag). The start tag is the low 32 bits
// of the process start time in clock ticks since boot (field 22 of
// /proc/PID/stat), plus one so that it is never zero. Two processes that
// share a pid cannot share a start tick in practice: the kernel hands out
// pids in sequence and only wraps after pid_max (up to 4,194,304) forks.
//
// The identity of the calling process is read once, at package init, so
// that recording an owner costs no syscall.
package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// PidBits is the number of bits a Linux pid needs: pid_max is at most 2^22.
const PidBits = 22

// MaxPid is the largest pid Linux hands out (PID_MAX_LIMIT - 1).
const MaxPid = 1<<PidBits - 1

// ID is a process identity: a pid and a start tag.
type ID struct {
	Pid uint32
	Tag uint32
}

var (
	self       ID
	selfPacked uint64
)

func init() {
	self.Pid = uint32(os.Getpid())
	t, err := startTag(int(self.Pid))
	if err != nil {
		// /proc is not mounted: fall back to a tag that still tells this
		// process apart from most others.
		t = uint32(os.Getpid())*2654435761 | 1
	}
	self.Tag = t
	selfPacked = self.Pack()
}

// Self returns the identity of the calling process. It makes no syscall.
func Self() ID { return self }

// SelfPacked returns Self().Pack(), computed once.
func SelfPacked() uint64 { return selfPacked }

// Pack returns id as one 64-bit word: tag in the high half, pid in the low.
func (id ID) Pack() uint64 { return uint64(id.Tag)<<32 | uint64(id.Pid) }

// Unpack is the inverse of [ID.Pack].
func Unpack(w uint64) ID { return ID{Pid: uint32(w), Tag: uint32(w >> 32)} }

// Alive reports whether the process id names is still running. A process
// that has exited but not been reaped (a zombie) is dead. A pid that now
// belongs to another process (a different start tag) is dead. When the
// answer cannot be known (no /proc), Alive reports true: waiting longer is
// safer than stealing a live owner's lock.
func Alive(id ID) bool {
	if id.Pid == 0 || id.Pid > MaxPid {
		return false
	}
	if id == self {
		return true
	}
	st, tag, err := stat(int(id.Pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return false
		}
		return true
	}
	if st == 'Z' || st == 'X' || st == 'x' {
		return false
	}
	return tag == id.Tag
}

// AliveMatch is Alive for a record that keeps only some bits of the start
// tag: the process is alive if it runs, is not a zombie, and its start tag
// agrees with tag on the bits set in mask. Fewer bits mean a larger (but
// still tiny) chance that a reused pid is mistaken for the recorded
// process: with 9 bits, 1 in 512 reuses within the tag's resolution.
func AliveMatch(pid, tag, mask uint32) bool {
	if pid == 0 || pid > MaxPid {
		return false
	}
	if pid == self.Pid {
		return self.Tag&mask == tag&mask
	}
	st, t, err := stat(int(pid))
	if err != nil {
		return !(errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH))
	}
	if st == 'Z' || st == 'X' || st == 'x' {
		return false
	}
	return t&mask == tag&mask
}

// StartTag returns the start tag of a running process.
func StartTag(pid int) (uint32, error) { return startTag(pid) }

func startTag(pid int) (uint32, error) {
	_, tag, err := stat(pid)
	return tag, err
}

// stat reads /proc/PID/stat and returns the state letter and the start tag.
func stat(pid int) (state byte, tag uint32, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, errors.New("proc: malformed stat")
	}
	fields := bytes.Fields(b[i+2:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, errors.New("proc: malformed stat")
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, errors.New("proc: malformed stat")
	}
	return fields[0][0], uint32(start%0xffffffff) + 1, nil
}
