package identity

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf"
)

const (
	fakePasswd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"
	fakeGroup  = "root:x:0:\nadm:x:4:alice\nalice:x:1000:\ndocker:x:999:alice\n"
)

// fakeTask describes one process in a fake proc tree.
type fakeTask struct {
	pid, tid   uint32
	comm       string // leader comm
	threadComm string // comm of tid when tid != pid
	startTicks uint64
	uid, euid  uint32
	gid        uint32
	groups     string // Groups: value
	cmdline    []string
	noExe      bool
}

// writeFakeProc lays out task under root and returns the identity of its
// executable (a file in the test's directory).
func writeFakeProc(t *testing.T, root string, task fakeTask) (dev, ino uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(task.pid)))
	must(t, os.MkdirAll(dir, 0o755))
	stat := func(pid uint32, comm string) string {
		return strconv.Itoa(int(pid)) + " (" + comm + ") S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " +
			strconv.FormatUint(task.startTicks, 10) + " 12345678 100 18446744073709551615\n"
	}
	status := "Name:\t" + task.comm + "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t" + strconv.Itoa(int(task.pid)) +
		"\nUid:\t" + u32(task.uid) + "\t" + u32(task.euid) + "\t" + u32(task.euid) + "\t" + u32(task.euid) +
		"\nGid:\t" + u32(task.gid) + "\t" + u32(task.gid) + "\t" + u32(task.gid) + "\t" + u32(task.gid) +
		"\nFDSize:\t64\nGroups:\t" + task.groups + "\nNStgid:\t1\n"
	must(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat(task.pid, task.comm)), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(task.cmdline, "\x00")+"\x00"), 0o644))
	if task.tid != 0 && task.tid != task.pid {
		tdir := filepath.Join(dir, "task", strconv.Itoa(int(task.tid)))
		must(t, os.MkdirAll(tdir, 0o755))
		must(t, os.WriteFile(filepath.Join(tdir, "stat"), []byte(stat(task.tid, task.threadComm)), 0o644))
		must(t, os.WriteFile(filepath.Join(tdir, "status"), []byte(status), 0o644))
	}
	exe := filepath.Join(root, "bin-"+strconv.Itoa(int(task.pid)), "curl")
	must(t, os.MkdirAll(filepath.Dir(exe), 0o755))
	must(t, os.WriteFile(exe, []byte("#!/bin/true\n"), 0o755))
	if !task.noExe {
		must(t, os.Symlink(exe, filepath.Join(dir, "exe")))
	}
	var st unix.Stat_t
	must(t, unix.Stat(exe, &st))
	return st.Dev, st.Ino
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newFakeResolver returns a resolver over a fake proc tree and user
// databases in a temporary directory.
func newFakeResolver(t *testing.T) (*Resolver, string) {
	t.Helper()
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	must(t, os.Mkdir(proc, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte(fakePasswd), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "group"), []byte(fakeGroup), 0o644))
	r := NewResolver(Options{ProcRoot: proc, PasswdPath: filepath.Join(dir, "passwd"), GroupPath: filepath.Join(dir, "group")})
	return r, proc
}

func TestResolveFakeProc(t *testing.T) {
	alice := fakeTask{pid: 4242, tid: 4242, comm: "curl", startTicks: 123456, uid: 1000, euid: 1000, gid: 1000,
		groups: "4 999 1000 4711", cmdline: []string{"curl", "-H", "Authorization: Bearer abc.def", "http://169.254.169.254/x", "more"}}
	aliceWant := Caller{UID: 1000, GID: 1000, PID: 4242, Comm: "curl", UserName: "alice",
		Groups: []string{"alice", "adm", "docker"}, ProcessName: "curl",
		CmdLine: "curl -H Authorization: [REDACTED] http://169.254.169.254/x"}
	empty := Caller{UID: 1000, GID: 1000, PID: 4242, Comm: "curl", UserName: "alice", Groups: []string{"alice"}}
	root := alice
	root.uid, root.euid, root.gid, root.groups = 0, 0, 0, "0"
	rootWant := Caller{UID: 0, GID: 0, PID: 4242, Comm: "curl", UserName: "root", Root: true, Groups: []string{"root"},
		ProcessName: "curl", CmdLine: aliceWant.CmdLine}
	setuid := root
	setuid.euid = 1000
	setuidWant := rootWant
	setuidWant.Root = false
	thread := alice
	thread.tid, thread.threadComm = 4243, "worker-1"
	threadWant := aliceWant
	threadWant.Comm = "worker-1"
	noExe := alice
	noExe.noExe = true

	tests := []struct {
		name     string
		task     fakeTask
		noProc   bool
		taskInfo bool
		edit     func(*bpf.Record)
		want     Caller
	}{
		{name: "Match", task: alice, taskInfo: true, want: aliceWant},
		{name: "MatchWithinTick", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.StartTime += 9_999_999 - 5_000_000 }, want: aliceWant},
		{name: "PidReusedStartTime", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.StartTime += nsPerTick }, want: empty},
		{name: "ExecAfterConnectInode", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.ExeIno++ }, want: empty},
		{name: "ExecAfterConnectDevice", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.ExeDev++ }, want: empty},
		{name: "CommChanged", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.Comm = "evil" }, want: func() Caller { c := empty; c.Comm = "evil"; return c }()},
		{name: "CommChangedNoTaskInfo", task: alice, edit: func(r *bpf.Record) { r.Comm = "evil" }, want: func() Caller { c := empty; c.Comm = "evil"; return c }()},
		{name: "UIDChangedSinceConnect", task: alice, taskInfo: true, edit: func(r *bpf.Record) { r.UID, r.EUID = 0, 0 },
			want: Caller{UID: 0, GID: 1000, PID: 4242, Comm: "curl", UserName: "root", Root: true, Groups: []string{"alice"}}},
		{name: "RootRealAndEffective", task: root, taskInfo: true, want: rootWant},
		{name: "RootRecordEUIDNotZero", task: root, taskInfo: true, edit: func(r *bpf.Record) { r.EUID = 1000 }, want: setuidWant},
		{name: "RootNoTaskInfoStatusEUID1000", task: setuid, want: setuidWant},
		{name: "RootNoTaskInfoStatusEUID0", task: root, want: rootWant},
		{name: "NoTaskInfoAdvisoryMatch", task: alice, want: aliceWant},
		{name: "Thread", task: thread, taskInfo: true, want: threadWant},
		{name: "ThreadCommDiffers", task: thread, taskInfo: true, edit: func(r *bpf.Record) { r.Comm = "curl" }, want: empty},
		{name: "ExeUnreadable", task: noExe, taskInfo: true, want: empty},
		{name: "ProcessGone", task: alice, noProc: true, taskInfo: true, want: empty},
		{name: "ProcessGoneRootNoTaskInfo", task: root, noProc: true,
			want: Caller{UID: 0, GID: 0, PID: 4242, Comm: "curl", UserName: "root", Groups: []string{"root"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, proc := newFakeResolver(t)
			dev, ino := writeFakeProc(t, proc, tt.task)
			if tt.noProc {
				must(t, os.RemoveAll(filepath.Join(proc, u32(tt.task.pid))))
			}
			rec := bpf.Record{TGID: tt.task.pid, TID: tt.task.tid, UID: tt.task.uid, GID: tt.task.gid, Comm: tt.task.comm}
			if tt.task.tid != tt.task.pid {
				rec.Comm = tt.task.threadComm
			}
			if tt.taskInfo {
				rec.TaskInfo, rec.EUID, rec.ExeDev, rec.ExeIno = true, tt.task.euid, dev, ino
				rec.StartTime = tt.task.startTicks*nsPerTick + 5_000_000
			}
			if tt.edit != nil {
				tt.edit(&rec)
			}
			want := tt.want
			if want.ProcessName != "" {
				want.ExePath = filepath.Join(proc, "bin-"+u32(tt.task.pid), "curl")
			}
			got := r.Resolve(rec)
			if !equalCaller(got, want) {
				t.Errorf("Resolve:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func equalCaller(a, b Caller) bool {
	return slices.Equal(a.Groups, b.Groups) && a.UID == b.UID && a.GID == b.GID && a.PID == b.PID &&
		a.Comm == b.Comm && a.Root == b.Root && a.UserName == b.UserName && a.ExePath == b.ExePath &&
		a.ProcessName == b.ProcessName && a.CmdLine == b.CmdLine
}

func TestCallerAuthz(t *testing.T) {
	c := Caller{UID: 7, GID: 8, PID: 9, Comm: "c", Root: true, UserName: "u", Groups: []string{"g"},
		ExePath: "/bin/x", ProcessName: "x", CmdLine: "x -y"}
	a := c.Authz()
	if a.UID != 7 || a.UserName != "u" || !slices.Equal(a.Groups, c.Groups) || a.ExePath != "/bin/x" ||
		a.ProcessName != "x" || a.PID != 9 || !a.Root {
		t.Errorf("Authz() = %+v", a)
	}
}
