package bpf

import (
	"testing"

	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/bpf/cgroup2"
	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat field 22 (100 on
// every architecture Linux runs this agent on).
const clockTicks = 100

// TestRedirect checks the whole path for each kind of caller: connect4 or
// connect6 redirects, sockops moves the record, Take returns the caller's
// identity exactly once, and getpeername shows the original destination.
// The task identity comes from the kernel (issue 15.5, 15.6): the effective
// uid apart from the real one, the executable's device and inode as stat(2)
// reports them, and the process start time of /proc/<pid>/stat. The client
// splits its real and effective uid itself with setresuid, which leaves the
// credentials a set-user-ID executable would; a set-user-ID copy of the test
// binary would hand root to any local user while the tests run (test flags
// write files).
func TestRedirect(t *testing.T) {
	tests := []struct {
		name       string
		uid        uint32 // the client runs as this user
		resuid     string // then sets its real:effective uid
		thread     bool   // connects from a thread younger than the process
		mapped     bool
		ruid, euid uint32
	}{
		{"root/ipv4", 0, "", false, false, 0, 0},
		{"root/v4-mapped", 0, "", false, true, 0, 0},
		{"nobody/ipv4", 65534, "", false, false, 65534, 65534},
		{"nobody/v4-mapped", 65534, "", false, true, 65534, 65534},
		{"real nobody, effective root", 0, "65534:0", false, false, 65534, 0},
		{"real root, effective nobody", 0, "0:65534", false, true, 0, 65534},
		{"nobody/late thread", 65534, "", true, false, 65534, 65534},
	}
	exe := statExe(t, clientBinary)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{})
			if err := r.objs.TaskInfo(); err != nil {
				t.Fatalf("no task identity on a kernel with BTF: %v", err)
			}
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
				t.Fatal(err)
			}
			dst, family := r.target, uint16(unix.AF_INET)
			if tt.mapped {
				dst, family = mapped(r.target), unix.AF_INET6
			}
			res := client{dst: dst, uid: tt.uid, resuid: tt.resuid, thread: tt.thread}.run(t, r.cgroup)
			if tt.thread == (res.TID == res.PID) {
				t.Fatalf("client connected from thread %d of process %d; want a thread other than the leader: %v", res.TID, res.PID, tt.thread)
			}
			if res.Errno != 0 {
				t.Fatalf("connect: %v", unix.Errno(res.Errno))
			}
			if res.UID != int(tt.ruid) || res.EUID != int(tt.euid) {
				t.Fatalf("client ran as uid %d euid %d; want %d, %d", res.UID, res.EUID, tt.ruid, tt.euid)
			}
			if res.Peer != dst.String() {
				t.Errorf("getpeername = %s; want the original destination %s", res.Peer, dst)
			}
			peer := bpftest.Accept(t, r.proxy)
			rec, ok, err := r.objs.Take(peer)
			if err != nil || !ok {
				t.Fatalf("Take(%s) = %v, %v; want a record", peer, ok, err)
			}
			cgid, err := cgroup2.ID(r.cgroup)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.StartTime / (1e9 / clockTicks); got != res.StartTicks {
				t.Errorf("StartTime %d ns = %d ticks; /proc/<pid>/stat says %d", rec.StartTime, got, res.StartTicks)
			}
			want := Record{
				Cookie: res.Cookie, CgroupID: cgid, NetnsCookie: r.objs.HostNetnsCookie(),
				TGID: uint32(res.PID), TID: uint32(res.TID), UID: tt.ruid, GID: tt.uid,
				Dest: r.target, Family: family, Comm: clientName,
				TaskInfo: true, EUID: tt.euid, ExeDev: exe.Dev, ExeIno: exe.Ino, StartTime: rec.StartTime,
			}
			if rec != want {
				t.Errorf("record\n got %+v\nwant %+v", rec, want)
			}
			if _, ok, _ := r.objs.Take(peer); ok {
				t.Error("second Take found the record again; want it deleted")
			}
			c := counters(t, r.objs)
			if c.Redirected != 1 || c.LookupsMissed != 1 {
				t.Errorf("counters %+v; want Redirected 1, LookupsMissed 1", c)
			}
		})
	}
}

// TestNoTaskInfo forces the fallback of a kernel without BTF: the programs
// load without the task reads, and records carry everything else.
func TestNoTaskInfo(t *testing.T) {
	t.Parallel()
	bpftest.RequireRoot(t)
	// The fallback relocates against no kernel types at all, as on a
	// kernel without BTF; only the cleared flag lets that load pass.
	cfg, err := Options{}.config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Flags |= flagTaskInfo
	none, err := noKernelTypes()
	if err != nil {
		t.Fatal(err)
	}
	var o Objects
	if err := o.load(cfg, none); err == nil {
		o.objs.Close()
		t.Fatal("the task reads loaded without kernel types; the fallback would not be one")
	}

	r := newRig(t, Options{NoTaskInfo: true})
	if err := r.objs.TaskInfo(); err != ErrTaskInfoOff {
		t.Fatalf("TaskInfo() = %v; want ErrTaskInfoOff", err)
	}
	if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
		t.Fatal(err)
	}
	res := client{dst: r.target, uid: 65534}.run(t, r.cgroup)
	if res.Errno != 0 || res.Peer != r.target.String() {
		t.Fatalf("connect: errno %v, peer %s", unix.Errno(res.Errno), res.Peer)
	}
	rec, ok, err := r.objs.Take(bpftest.Accept(t, r.proxy))
	if err != nil || !ok {
		t.Fatalf("Take = %v, %v; want a record", ok, err)
	}
	want := Record{
		Cookie: res.Cookie, CgroupID: rec.CgroupID, NetnsCookie: r.objs.HostNetnsCookie(),
		TGID: uint32(res.PID), TID: uint32(res.TID), UID: 65534, GID: 65534,
		Dest: r.target, Family: unix.AF_INET, Comm: clientName,
	}
	if rec != want || rec.CgroupID == 0 {
		t.Errorf("record\n got %+v\nwant %+v (no task identity)", rec, want)
	}
}

// statExe returns the device and inode stat(2) reports for path.
func statExe(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
