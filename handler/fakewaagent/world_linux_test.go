package fakewaagent

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/handler/internal/testbin"
	"github.com/mspguest/msp/handler/supervisor"
	"github.com/mspguest/msp/hostsim"
)

const (
	extName = "Contoso.Security.MSP.MspProxyAgentLinux"
	handler = "github.com/mspguest/msp/cmd/msp-handler"
)

// testIP is this test process's loopback address for the emulated
// endpoints (ebpf.md §9: per-process targets, so that parallel packages
// do not collide); 127.0.5.x belongs to this package.
var testIP = fmt.Sprintf("127.0.5.%d", os.Getpid()%100+100)

func TestMain(m *testing.M) { testbin.Main(m) }

// buildPackage lays out a handler package: the committed manifest, the
// handler binary and the agent of agentPkg (testbin.Agent, the real one,
// or testbin.FakeAgent) built at the given version.
func buildPackage(t *testing.T, version, agentPkg string) Package {
	t.Helper()
	hbin, err := testbin.Build(handler, "")
	if err != nil {
		t.Fatal(err)
	}
	abin, err := testbin.Build(agentPkg, version)
	if err != nil {
		t.Fatal(err)
	}
	// The layout of the published zip (scripts/package): bin/msp-handler is
	// the shim that runs bin/<arch>/msp-handler, and the agent is beside it.
	dir := filepath.Join(t.TempDir(), "pkg-"+version)
	arch := filepath.Join("bin", runtime.GOARCH)
	os.MkdirAll(filepath.Join(dir, arch), 0o755)
	for src, dst := range map[string]string{
		"../../manifest/HandlerManifest.json": "HandlerManifest.json",
		"../../scripts/package/shim.sh":       "bin/msp-handler",
		hbin:                                  filepath.Join(arch, "msp-handler"),
		abin:                                  filepath.Join(arch, "msp-agent"),
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil { // waagent adds u+x
			t.Fatal(err)
		}
	}
	return Package{Version: version, Dir: dir}
}

// world is one fake waagent driving the built handler in test mode: the
// real msp-agent it installs attaches to a child cgroup of this test and
// talks to msp-hostsim on testIP; clients run in that cgroup.
type world struct {
	t    *testing.T
	w    *Waagent
	root string // MSP_ROOT
	emu  *hostsim.Emulator
	cg   string
	cgFD *os.File

	mu      sync.Mutex
	outputs []string // every command's result and output
}

func newWorld(t *testing.T) *world {
	base := t.TempDir()
	cg := bpftest.NewCgroup(t) // skips without root; removed last
	os.Chmod(base, 0o755)
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	emu, err := hostsim.Start(hostsim.Config{IMDSAddr: testIP + ":0", WireServerAddr: testIP + ":0", HostGAAddr: testIP + ":0", Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	fd, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	w, err := New(filepath.Join(base, "var/lib/waagent"), filepath.Join(base, "var/log/azure"), extName)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "msproot")
	a := emu.Addrs()
	w.Env = []string{"PATH=" + os.Getenv("PATH"), "MSP_ROOT=" + root, "MSP_LISTEN=" + freePort(t), "MSP_CGROUP=" + cg,
		"MSP_POLL_SECONDS=1", "MSP_MONITOR_SECONDS=1",
		fmt.Sprintf(`MSP_ENDPOINTS={"imds":%q,"wireServer":%q,"hostGAPlugin":%q}`, a.IMDS, a.WireServer, a.HostGA)}
	wd := &world{t: t, w: w, root: root, emu: emu, cg: cg, cgFD: fd}
	w.Trace = func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		wd.mu.Lock()
		wd.outputs = append(wd.outputs, line)
		wd.mu.Unlock()
		t.Log(line)
	}
	// The agent mounts a private bpffs at MSP_ROOT/sys/fs/bpf.
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(root, "sys/fs/bpf"), unix.MNT_DETACH) })
	t.Cleanup(wd.stopAll)
	return wd
}

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// setEnv replaces (or adds) one variable of waagent's environment.
func (wd *world) setEnv(key, value string) {
	for i, kv := range wd.w.Env {
		if strings.HasPrefix(kv, key+"=") {
			wd.w.Env[i] = key + "=" + value
			return
		}
	}
	wd.w.Env = append(wd.w.Env, key+"="+value)
}

// stopAll ends what the handler left running, whatever the test did, and
// detaches what an agent left attached.
func (wd *world) stopAll() {
	run := filepath.Join(wd.root, "run/msp-handler")
	supervisor.Stop(filepath.Join(run, "monitor.pid"), "monitor", 5*time.Second)
	supervisor.Stop(filepath.Join(run, "supervisor.pid"), "supervise", 15*time.Second)
	if wd.t.Failed() {
		for _, f := range []string{"supervisor.log", "monitor.log"} {
			data, _ := os.ReadFile(filepath.Join(wd.w.LogFolder(), f))
			wd.t.Logf("%s:\n%s", f, tail(data, 4000))
		}
	}
	if bin := wd.path("usr/sbin/msp-agent"); fileExists(bin) {
		_ = exec.Command(bin, "--config", wd.path("etc/msp-agent/config.json"), "--cleanup").Run()
	}
}

func tail(data []byte, n int) []byte {
	if len(data) > n {
		return data[len(data)-n:]
	}
	return data
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (wd *world) path(p string) string { return filepath.Join(wd.root, p) }

func (wd *world) mustSucceed(s Sequence, err error) {
	wd.t.Helper()
	if err != nil {
		wd.t.Fatal(err)
	}
	if r, failed := s.Failed(); failed {
		wd.t.Fatalf("command failed: %s", r)
	}
}

func (wd *world) status(version string, seq int) Status {
	wd.t.Helper()
	st, err := wd.w.ReadStatus(version, seq)
	if err != nil {
		wd.t.Fatal(err)
	}
	return st
}

// agentPid is the supervised agent's pid, 0 when none runs.
func (wd *world) agentPid() int {
	pid, ok := supervisor.Find(wd.path("run/msp-handler/agent.pid"), wd.path("usr/sbin/msp-agent"))
	if !ok {
		return 0
	}
	return pid
}

// reply is what curl got.
type reply struct {
	status int    // -1: no HTTP answer (refused, reset)
	reason string // x-ms-azure-proxy-reason
}

// curl runs curl in the test cgroup as uid against the emulator's
// endpoint ("imds", "wireserver") and target.
func (wd *world) curl(uid int, endpoint, target string, headers ...string) reply {
	wd.t.Helper()
	args := []string{"-s", "-m", "10", "-H", "Metadata: true", "-D", "-", "-o", "/dev/null"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command("curl", append(args, wd.url(endpoint, target))...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(wd.cgFD.Fd())}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	out, err := cmd.Output()
	if err != nil {
		return reply{status: -1}
	}
	var r reply
	for i, line := range strings.Split(string(out), "\r\n") {
		if f := strings.Fields(line); i == 0 && len(f) > 1 {
			r.status, _ = strconv.Atoi(f[1])
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "x-ms-azure-proxy-reason") {
			r.reason = strings.TrimSpace(v)
		}
	}
	return r
}

func (wd *world) url(endpoint, target string) string {
	a := wd.emu.Addrs()
	return "http://" + map[string]string{"imds": a.IMDS, "wireserver": a.WireServer}[endpoint] + target
}

// lastRecord is the emulator's latest record of a target, or nil.
func (wd *world) lastRecord(target string) *hostsim.Record {
	recs := wd.emu.Verifications(0)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].RawTarget == target {
			return &recs[i]
		}
	}
	return nil
}

// assertSignedAndValid: root's request to target reached the host signed
// with the latched key, and the host found it valid.
func (wd *world) assertSignedAndValid(endpoint, target string) {
	wd.t.Helper()
	if r := wd.curl(0, endpoint, target); r.status != 200 {
		wd.t.Fatalf("root GET %s %s: %+v; want 200", endpoint, target, r)
	}
	rec := wd.lastRecord(target)
	key := wd.emu.View().KeyGUID
	if rec == nil || !rec.Signed || !rec.Valid || key == nil || rec.KeyGUID != *key {
		wd.t.Fatalf("emulator record %+v; want signed and valid with the latched key %v", rec, key)
	}
}

// traffic is a client in the test cgroup requesting target in a loop
// (root, 20 per second) until stop; codes are curl's %{http_code}, 000
// for a connection refused locally.
type traffic struct {
	cmd   *exec.Cmd
	out   bytes.Buffer
	mu    sync.Mutex
	start time.Time
}

func (wd *world) startTraffic(endpoint, target string) *traffic {
	wd.t.Helper()
	// SIGTERM to the shell ends the loop after the request in flight has
	// printed its code, so every request the host saw is counted.
	script := fmt.Sprintf(`stop=; trap 'stop=1' TERM; while [ -z "$stop" ]; do curl -s -m 5 -o /dev/null -w '%%{http_code}\n' -H 'Metadata: true' '%s'; sleep 0.05; done`, wd.url(endpoint, target))
	tr := &traffic{start: time.Now()}
	tr.cmd = exec.Command("/bin/sh", "-c", script)
	tr.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(wd.cgFD.Fd()), Setpgid: true}
	tr.cmd.Stdout = writerFunc(func(p []byte) (int, error) { tr.mu.Lock(); defer tr.mu.Unlock(); return tr.out.Write(p) })
	if err := tr.cmd.Start(); err != nil {
		wd.t.Fatal(err)
	}
	wd.t.Cleanup(func() { tr.stop() })
	return tr
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// stop ends the loop once the request in flight finished (SIGKILL after
// 10 s) and returns the count of each code.
func (tr *traffic) stop() map[string]int {
	if tr.cmd.Process != nil && tr.cmd.ProcessState == nil {
		done := make(chan struct{})
		go func() { _ = tr.cmd.Wait(); close(done) }()
		_ = tr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-tr.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	codes := map[string]int{}
	for _, c := range strings.Fields(tr.out.String()) {
		codes[c]++
	}
	return codes
}

// attachedPrograms counts the programs attached to the test cgroup on
// the agent's hooks.
func (wd *world) attachedPrograms() int {
	wd.t.Helper()
	ids, err := bpf.Attached(wd.cg)
	if err != nil {
		wd.t.Fatal(err)
	}
	return len(ids)
}

// assertNoBypass: every request the emulator recorded that must be signed
// was signed and valid — no client reached the host around the agent.
func (wd *world) assertNoBypass(since uint64) {
	wd.t.Helper()
	for _, r := range wd.emu.Verifications(since) {
		if r.Class == "signed" && (!r.Signed || !r.Valid) {
			wd.t.Errorf("a request reached the host unsigned or invalid: %+v", r)
		}
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
