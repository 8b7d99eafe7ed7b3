package identity

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf"
)

// Read limits for the /proc files. /proc/<pid>/status grows with the
// number of supplementary groups (up to 65536); a longer file is treated as
// unreadable. The command line is read up to cmdlineLimit bytes: the
// first four arguments rarely need more, and an argument cut by the limit
// is dropped rather than shown half (see splitCmdline).
const (
	statLimit    = 4096
	statusLimit  = 1 << 20
	cmdlineLimit = 4096
	cmdlineMax   = 1024 // bytes of redacted command line kept
)

// nsPerTick converts /proc/<pid>/stat start times (USER_HZ = 100 ticks per
// second on every Linux architecture) to the nanoseconds of the record.
const nsPerTick = 1_000_000_000 / 100

// scratch holds the per-call buffers of Resolve, pooled so that a
// connection costs no buffer allocations.
type scratch struct {
	buf    []byte
	link   [unix.PathMax]byte
	args   [cmdlineArgs][]byte
	groups []byte
	out    []byte
}

// process is what /proc told about a verified process.
type process struct {
	realUID, effUID uint32
	groups          []byte // Groups: value, valid until the scratch is reused
	exe             string
	cmdline         string
}

// inspect reads /proc/<tgid> and reports whether it is still the process
// (and thread) that made rec. All reads go through one directory file
// descriptor: a /proc/<pid> directory stays bound to the process it was
// opened for, so once the process exits every read fails, even if its pid
// is reused meanwhile.
//
// The checks, each failing closed: the thread's comm equals rec.Comm; its
// real uid and gid equal the record's; the executable can be stat'ed and
// did not change while it was read (an exec during the read); and when the
// record has TaskInfo, the leader's start time equals rec.StartTime at
// tick precision (pid reuse) and the executable's device and inode equal
// rec.ExeDev/ExeIno (an exec after connect()).
func (s *scratch) inspect(procRoot string, rec bpf.Record) (process, bool) {
	var p process
	dir, err := unix.Open(procRoot+"/"+itoa(rec.TGID), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return p, false
	}
	defer unix.Close(dir)

	b, err := s.readAll(dir, "stat", statLimit)
	if err != nil {
		return p, false
	}
	leader, ok := parseStat(b)
	if !ok || rec.TaskInfo && leader.startTime != rec.StartTime/nsPerTick {
		return p, false
	}
	statusPath := "status"
	if rec.TID != 0 && rec.TID != rec.TGID {
		task := "task/" + itoa(rec.TID) + "/"
		statusPath = task + "status"
		if b, err = s.readAll(dir, task+"stat", statLimit); err != nil {
			return p, false
		}
		if leader, ok = parseStat(b); !ok {
			return p, false
		}
	}
	if string(leader.comm) != rec.Comm {
		return p, false
	}

	if b, err = s.readAll(dir, statusPath, statusLimit); err != nil {
		return p, false
	}
	st := parseStatus(b)
	if !st.hasIDs || !st.hasGroups || st.realUID != rec.UID || st.realGID != rec.GID {
		return p, false
	}
	p.realUID, p.effUID = st.realUID, st.effUID

	var before, after unix.Stat_t
	if unix.Fstatat(dir, "exe", &before, 0) != nil {
		return p, false
	}
	if rec.TaskInfo && (before.Dev != rec.ExeDev || before.Ino != rec.ExeIno) {
		return p, false
	}
	n, err := unix.Readlinkat(dir, "exe", s.link[:])
	if err != nil || n == 0 || n == len(s.link) {
		return p, false
	}
	// The read buffer is about to be reused: keep the groups apart.
	s.groups = append(s.groups[:0], st.groups...)
	cmdline, err := s.cmdline(dir)
	if err != nil || unix.Fstatat(dir, "exe", &after, 0) != nil ||
		after.Dev != before.Dev || after.Ino != before.Ino {
		return p, false
	}
	p.groups = s.groups
	p.exe = string(s.link[:n])
	p.cmdline = cmdline
	return p, true
}

// cmdline reads and redacts the first arguments of /proc/<pid>/cmdline.
func (s *scratch) cmdline(dir int) (string, error) {
	b, truncated, err := s.read(dir, "cmdline", cmdlineLimit)
	if err != nil {
		return "", err
	}
	args := splitCmdline(b, truncated, s.args[:0])
	s.out = appendRedacted(s.out[:0], args)
	out := s.out
	if len(out) > cmdlineMax {
		out = out[:cmdlineMax]
	}
	return string(out), nil
}

var errTooLong = errors.New("file longer than its limit")

// readAll reads the whole file name under dir into s.buf; a file of limit
// bytes or more is errTooLong.
func (s *scratch) readAll(dir int, name string, limit int) ([]byte, error) {
	b, truncated, err := s.read(dir, name, limit)
	if err == nil && truncated {
		err = errTooLong
	}
	return b, err
}

// read reads the file name under dir into s.buf, up to limit bytes;
// truncated reports that the limit was reached.
func (s *scratch) read(dir int, name string, limit int) (b []byte, truncated bool, err error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	if cap(s.buf) < statLimit {
		s.buf = make([]byte, 0, statLimit)
	}
	b = s.buf[:0]
	for len(b) < limit {
		if len(b) == cap(b) {
			// Grow by appending; the new capacity is what the next read fills.
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):min(cap(b), limit)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			break
		}
		want := min(cap(b), limit) - len(b)
		b = b[:len(b)+n]
		// A short read of a file (regular, or a seq_file or cmdline of
		// /proc, which fill the whole request when they can) is its end:
		// this saves the second read(2) per file.
		if n < want {
			break
		}
	}
	if len(b) < limit {
		s.buf = b
		return b, false, nil
	}
	s.buf = b
	return b, true, nil
}

// release drops buffers that a rare large file grew, before the scratch
// goes back to the pool.
func (s *scratch) release() {
	if cap(s.buf) > 64<<10 {
		s.buf = nil
	}
	if cap(s.groups) > 64<<10 {
		s.groups = nil
	}
}
