package proxy

import (
	"crypto/rand"
	"os"
	"strconv"
	"strings"

	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/bpf"
)

var randReader = rand.Reader

// RecordCaller is the caller from the kernel record alone, the default
// of Config.Identify until the identity resolver is wired: uid, gid, tgid
// and comm; no user, group, executable or command line, so selectors on
// them never match. Root needs a real uid of 0 and an effective uid known
// to be 0: from the record where the kernel captured it (TaskInfo), else
// from /proc/<tid>/status when /proc/<tid>/comm still names the recorded
// task (issue 15 item 5); unknown means not root.
func RecordCaller(rec bpf.Record) identity.Caller {
	c := identity.Caller{UID: rec.UID, GID: rec.GID, PID: int32(rec.TGID), Comm: rec.Comm}
	if rec.UID != 0 {
		return c
	}
	if rec.TaskInfo {
		c.Root = rec.EUID == 0
		return c
	}
	c.Root = procEUIDZero(rec.TID, rec.Comm)
	return c
}

// procEUIDZero reads the effective uid of a task from /proc/<tid>/status
// (one file), if the task still has the recorded comm (its Name: line; a
// comm that status would escape never matches, which only loses root).
func procEUIDZero(tid uint32, comm string) bool {
	if tid == 0 {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return false
	}
	name, uidZero := false, false
	for _, line := range strings.SplitN(string(st), "\n", 12) {
		if v, ok := strings.CutPrefix(line, "Name:"); ok {
			name = strings.TrimLeft(v, "\t ") == comm
		}
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			uidZero = len(f) >= 2 && f[0] == "0" && f[1] == "0"
		}
	}
	return name && uidZero
}
