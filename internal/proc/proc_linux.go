//go:build linux

package proc

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lockedAt reports whether another open file description holds the lock
// byte of slot on the file behind fd.
func lockedAt(fd int, slot uint32) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: LockBase + int64(slot) - 1, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		return lk.Type != unix.F_UNLCK, nil
	}
}

func tryLock(fd int, slot uint32) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: LockBase + int64(slot) - 1, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return false, nil
		}
		return false, err
	}
}

// Attach claims a slot in the registry whose n records start at byte off
// of the file behind f, or joins the claim this process already holds on
// that file. path, when not empty, is the file's name, tried before
// /proc/self/fd to open the private description. The returned handle
// keeps its own mapping of the table and its own descriptor; call Release
// once for every Attach.
//
// When no private description can be had (a memfd without /proc), Attach
// returns a blind registry (see Blind) and no error.
func Attach(f *os.File, path string, off int64, n int) (*Registry, error) {
	if n < 1 || n > MaxSlots {
		return nil, fmt.Errorf("proc: registry of %d slots: want 1..%d", n, MaxSlots)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("proc: registry: %w", err)
	}
	key := fileKey{uint64(st.Dev), st.Ino}
	attached.mu.Lock()
	defer attached.mu.Unlock()
	if r := attached.m[key]; r != nil {
		r.refs++
		return r, nil
	}
	fd := reopen(f, path, key)
	if fd < 0 {
		return Blind(), nil
	}
	r, err := claim(fd, off, n)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	r.key = key
	r.refs = 1
	if attached.m == nil {
		attached.m = make(map[fileKey]*Registry)
	}
	attached.m[key] = r
	return r, nil
}

// reopen returns a new, private, close-on-exec open file description of
// the file behind f, or -1.
func reopen(f *os.File, path string, key fileKey) int {
	try := func(p string) int {
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return -1
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || (fileKey{uint64(st.Dev), st.Ino}) != key {
			unix.Close(fd)
			return -1
		}
		return fd
	}
	if path != "" && path[0] == '/' {
		if fd := try(path); fd >= 0 {
			return fd
		}
	}
	return try("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

// claim maps the table through fd and takes the first free slot.
func claim(fd int, off int64, n int) (*Registry, error) {
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	length := off - start + int64(n)*SlotSize
	mapd, err := unix.Mmap(fd, start, int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("proc: mapping registry: %w", err)
	}
	r := &Registry{mapd: mapd, mapStart: start, table: mapd[off-start:], n: uint32(n), fd: fd}
	// Slots released cleanly (pid 0) first, so that a dead process's
	// records keep their slot, and so their generation, as long as may be.
	for pass := 0; pass < 2; pass++ {
		for i := 1; i <= n; i++ {
			rec := r.table[(i-1)*SlotSize:]
			pid := atomic.LoadUint32((*uint32)(unsafe.Pointer(&rec[4])))
			if pass == 0 && pid != 0 {
				continue
			}
			ok, err := tryLock(fd, uint32(i))
			if err != nil {
				unix.Munmap(mapd)
				return nil, fmt.Errorf("proc: locking registry slot %d: %w", i, err)
			}
			if !ok {
				continue
			}
			// The slot is ours: the kernel holds it for us until we close
			// fd or die. A new generation makes every record of the
			// slot's earlier holders name a dead process.
			gen := atomic.AddUint32(r.gen(uint32(i)), 1)
			if gen == 0 {
				gen = atomic.AddUint32(r.gen(uint32(i)), 1)
			}
			r.self = ID{Slot: uint32(i), Gen: gen}
			writeRecord(rec)
			return r, nil
		}
	}
	unix.Munmap(mapd)
	return nil, fmt.Errorf("%w (%d slots)", ErrFull, n)
}

func writeRecord(rec []byte) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&rec[8])), pidNamespace())
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&rec[16])), uint32(os.Geteuid()))
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&rec[24])), uint64(time.Now().UnixNano()))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&rec[4])), uint32(os.Getpid()))
}

// pidNamespace returns the inode of this process's pid namespace, or 0.
func pidNamespace() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return 0
	}
	return st.Ino
}

// Release gives back one Attach. The last one clears the slot's pid (a
// clean release) and closes the private description, which drops the
// slot's lock. Releasing a blind registry does nothing.
func (r *Registry) Release() error {
	if r == nil || r.fd < 0 {
		return nil
	}
	attached.mu.Lock()
	defer attached.mu.Unlock()
	if r.refs <= 0 {
		return nil
	}
	r.refs--
	if r.refs > 0 {
		return nil
	}
	delete(attached.m, r.key)
	// A clean release: pid 0. Written through the descriptor, not the
	// mapping, so that a file truncated under us cannot fault Close.
	var zero [4]byte
	off := int64(len(r.mapd)-len(r.table)) + int64(r.self.Slot-1)*SlotSize + 4
	_, _ = unix.Pwrite(r.fd, zero[:], r.mapStart+off)
	err := unix.Munmap(r.mapd)
	r.table, r.mapd = nil, nil
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	r.fd = -1
	return err
}
