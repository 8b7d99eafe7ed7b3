package identity

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf"
)

// realRecord builds the record the kernel would have captured for the
// running process pid, from /proc and a stat of its executable.
func realRecord(t testing.TB, pid int, exePath string, uid, gid uint32) bpf.Record {
	t.Helper()
	var s scratch
	dir, err := unix.Open("/proc/"+itoa(uint32(pid)), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	b, err := s.readAll(dir, "stat", statLimit)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := parseStat(b)
	if !ok {
		t.Fatalf("parseStat(%q) failed", b)
	}
	var exe unix.Stat_t
	if err := unix.Stat(exePath, &exe); err != nil {
		t.Fatal(err)
	}
	return bpf.Record{TGID: uint32(pid), TID: uint32(pid), UID: uid, GID: gid, Comm: string(st.comm),
		TaskInfo: true, EUID: uid, ExeDev: exe.Dev, ExeIno: exe.Ino, StartTime: st.startTime*nsPerTick + 1234}
}

// TestResolveRealProcess resolves a real child process, as root and as
// nobody with a supplementary group: reading another user's
// /proc/<pid>/exe needs root (CAP_SYS_PTRACE).
func TestResolveRealProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user and read its /proc/<pid>/exe (CI runs as root)")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if sleep, err = filepath.EvalSymlinks(sleep); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		uid, gid   uint32
		extra      []uint32
		wantUser   string
		wantGroups []string
		wantRoot   bool
	}{
		{name: "Root", wantUser: "root", wantGroups: []string{"root"}, wantRoot: true},
		{name: "Nobody", uid: 65534, gid: 65534, extra: []uint32{4}, wantUser: "nobody", wantGroups: []string{"nogroup", "adm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(sleep, "30")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tt.uid, Gid: tt.gid, Groups: tt.extra}}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			})
			waitComm(t, cmd.Process.Pid, "sleep")
			rec := realRecord(t, cmd.Process.Pid, sleep, tt.uid, tt.gid)
			r := NewResolver(Options{})

			got := r.Resolve(rec)
			want := Caller{UID: tt.uid, GID: tt.gid, PID: int32(cmd.Process.Pid), Comm: "sleep", Root: tt.wantRoot,
				UserName: tt.wantUser, Groups: tt.wantGroups, ExePath: sleep, ProcessName: "sleep", CmdLine: sleep + " 30"}
			if !equalCaller(got, want) {
				t.Errorf("Resolve:\n got %+v\nwant %+v", got, want)
			}

			rec.ExeIno++
			got = r.Resolve(rec)
			if got.ExePath != "" || got.ProcessName != "" || got.CmdLine != "" || !slices.Equal(got.Groups, tt.wantGroups[:1]) {
				t.Errorf("Resolve with another inode = %+v; want the /proc fields empty", got)
			}
		})
	}
}

// waitComm waits until the child has finished exec: its comm is the new
// image's and its arguments are in place (exec sets comm before it lays
// out the new stack, so for a moment the command line reads empty).
func waitComm(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/" + itoa(uint32(pid)) + "/comm")
		args, _ := os.ReadFile("/proc/" + itoa(uint32(pid)) + "/cmdline")
		if strings.TrimSpace(string(b)) == comm && len(args) > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d never showed comm %q", pid, comm)
}

// BenchmarkResolve resolves the benchmark's own process: the per-connection
// cost with warm name caches.
func BenchmarkResolve(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	rec := realRecord(b, os.Getpid(), exe, uint32(os.Getuid()), uint32(os.Getgid()))
	r := NewResolver(Options{})
	if c := r.Resolve(rec); c.ExePath == "" {
		b.Fatalf("Resolve(self) = %+v; want the /proc fields", c)
	}
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		r.Resolve(rec)
	}
	// CPU time (user + system) per call: on a shared machine the wall
	// time per op also counts waiting for a CPU.
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user plus system CPU time in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
