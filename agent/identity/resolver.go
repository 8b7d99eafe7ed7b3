package identity

import (
	"strconv"
	"sync"
	"time"

	"github.com/mspguest/msp/bpf"
)

// Options configure a Resolver. The zero value reads the real system.
type Options struct {
	// ProcRoot is the proc file system; "" means /proc. Tests pass a fake
	// tree with the same layout (<pid>/stat, status, cmdline, exe,
	// task/<tid>/stat, task/<tid>/status).
	ProcRoot string
	// PasswdPath and GroupPath are the user and group databases; ""
	// means /etc/passwd and /etc/group.
	PasswdPath string
	GroupPath  string
	// NameTTL is how long a user or group name (or its absence) is
	// cached; 0 means 60 s (authorization.md §4.3).
	NameTTL time.Duration
	// MaxNames bounds each of the two name caches; 0 means 4096 ids.
	MaxNames int
	// Now is the clock of the name caches; nil means time.Now.
	Now func() time.Time
}

// Resolver builds the Caller of a redirected connection from its kernel
// record. It is safe for concurrent use.
type Resolver struct {
	procRoot string
	users    *nameDB
	groups   *nameDB
	scratch  sync.Pool // *scratch
}

// NewResolver returns a Resolver with the defaults of Options applied.
func NewResolver(o Options) *Resolver {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.PasswdPath == "" {
		o.PasswdPath = "/etc/passwd"
	}
	if o.GroupPath == "" {
		o.GroupPath = "/etc/group"
	}
	if o.NameTTL <= 0 {
		o.NameTTL = 60 * time.Second
	}
	if o.MaxNames <= 0 {
		o.MaxNames = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Resolver{
		procRoot: o.ProcRoot,
		users:    newNameDB(o.PasswdPath, o.NameTTL, o.MaxNames, o.Now),
		groups:   newNameDB(o.GroupPath, o.NameTTL, o.MaxNames, o.Now),
	}
	r.scratch.New = func() any { return new(scratch) }
	return r
}

// Resolve returns the caller described by rec. uid, gid, tgid and comm are
// the record's; the user name and the primary group's name come from the
// user and group databases; Root follows the rule of the package
// documentation. The supplementary groups, the executable, the process
// name and the command line come from /proc/<tgid> and are set only when
// /proc/<tgid> is still the process that connected; otherwise they stay
// empty. Resolve never fails: what it cannot establish stays empty.
func (r *Resolver) Resolve(rec bpf.Record) Caller {
	c := Caller{UID: rec.UID, GID: rec.GID, PID: int32(rec.TGID), Comm: rec.Comm}
	c.UserName = r.users.name(rec.UID)
	if rec.TaskInfo {
		c.Root = rec.UID == 0 && rec.EUID == 0
	}
	s := r.scratch.Get().(*scratch)
	defer func() {
		s.release()
		r.scratch.Put(s)
	}()
	p, ok := s.inspect(r.procRoot, rec)
	if !ok {
		if name := r.groups.name(rec.GID); name != "" {
			c.Groups = []string{name}
		}
		return c
	}
	if !rec.TaskInfo {
		c.Root = rec.UID == 0 && p.realUID == 0 && p.effUID == 0
	}
	c.Groups = r.groupNames(rec.GID, p.groups)
	c.ExePath = p.exe
	c.ProcessName = baseName(p.exe)
	c.CmdLine = p.cmdline
	return c
}

// groupNames returns the names of the primary gid followed by those of the
// supplementary gids (the kernel keeps them sorted and unique); gids
// without a name are left out.
func (r *Resolver) groupNames(primary uint32, supplementary []byte) []string {
	n := 1
	eachGID(supplementary, func(uint32) { n++ })
	names := make([]string, 0, n)
	if name := r.groups.name(primary); name != "" {
		names = append(names, name)
	}
	eachGID(supplementary, func(gid uint32) {
		if gid == primary {
			return
		}
		if name := r.groups.name(gid); name != "" {
			names = append(names, name)
		}
	})
	if len(names) == 0 {
		return nil
	}
	return names
}

// baseName is the file name of an absolute path.
func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}

// itoa formats a pid for a /proc path.
func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
