package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/hostsim"
)

// testIP is this test process's loopback address for the emulated
// endpoints (ebpf.md §9: per-process targets, so that parallel packages
// do not collide); 127.0.3.x belongs to this package.
var testIP = fmt.Sprintf("127.0.3.%d", os.Getpid()%100+100)

var (
	buildOnce sync.Once
	agentBin  string
	buildErr  error
)

// agentBinary builds cmd/msp-agent once per test binary, as the package
// ships it.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "msp-agent-test-")
		if err != nil {
			buildErr = err
			return
		}
		agentBin = filepath.Join(dir, "msp-agent")
		out, err := exec.Command("go", "build", "-o", agentBin, "../../cmd/msp-agent").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

// harness is one isolated agent: msp-hostsim on testIP, the agent as a
// real process attached to a child cgroup with its own directories, a
// private bpffs, and clients placed in that cgroup.
type harness struct {
	t       *testing.T
	bin     string
	dir     string
	cg      string
	cgFD    *os.File
	emu     *hostsim.Emulator
	listen  netip.AddrPort
	cfg     map[string]any
	cfgPath string
	// wrap runs the agent through a command, e.g. setpriv.
	wrap []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cg := bpftest.NewCgroup(t)
	bin := agentBinary(t)
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
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bin: bin, dir: dir, cg: cg, cgFD: fd, emu: emu, listen: freePort(t), cfgPath: filepath.Join(dir, "config.json")}
	a := emu.Addrs()
	h.cfg = map[string]any{
		"listen":   h.listen.String(),
		"stateDir": filepath.Join(dir, "state"),
		"logDir":   filepath.Join(dir, "log"),
		"logLevel": "debug",
		"endpoints": map[string]string{
			"imds": a.IMDS, "wireServer": a.WireServer, "hostGAPlugin": a.HostGA,
		},
		"cgroup":              cg,
		"bpffsDir":            filepath.Join(dir, "bpffs", "msp-agent"),
		"pollIntervalSeconds": 1,
	}
	h.writeConfig()
	t.Cleanup(func() {
		// The agent (or --prepare) mounts a private bpffs there.
		_ = unix.Unmount(filepath.Join(dir, "bpffs"), unix.MNT_DETACH)
	})
	t.Cleanup(h.stopQuietly)
	return h
}

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func (h *harness) writeConfig() {
	h.t.Helper()
	data, err := json.MarshalIndent(h.cfg, "", "  ")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(h.cfgPath+".tmp", data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(h.cfgPath+".tmp", h.cfgPath); err != nil {
		h.t.Fatal(err)
	}
}

// start runs the agent and waits until `msp-agent --status --wait 30`
// reports provisioning finished.
func (h *harness) start() {
	h.t.Helper()
	h.mu.Lock()
	if h.cmd != nil {
		h.mu.Unlock()
		h.t.Fatal("agent already running")
	}
	argv := append(append([]string{}, h.wrap...), h.bin, "--config", h.cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: log, mu: &h.mu}, &lockedWriter{w: log, mu: &h.mu}
	if err := cmd.Start(); err != nil {
		h.mu.Unlock()
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	h.cmd, h.log, h.done = cmd, log, done
	h.mu.Unlock()
	code, out := h.status(30)
	if code != 0 {
		h.t.Fatalf("msp-agent --status --wait 30: exit %d: %s\nagent log:\n%s", code, out, h.logText())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return ""
	}
	return h.log.String()
}

// status runs `msp-agent --status --wait N`.
func (h *harness) status(wait int) (int, string) {
	out, err := exec.Command(h.bin, "--config", h.cfgPath, "--status", "--wait", strconv.Itoa(wait)).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return 0, string(out)
}

// signal sends sig and waits for the agent to exit; it returns the exit
// error.
func (h *harness) stop(sig syscall.Signal) error {
	h.t.Helper()
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		h.t.Fatalf("agent did not stop within 20 s after %v\n%s", sig, h.logText())
		return nil
	}
}

func (h *harness) stopQuietly() {
	if err := h.stop(syscall.SIGTERM); err != nil && h.t.Failed() {
		h.t.Logf("agent exit: %v", err)
	}
	if h.t.Failed() {
		h.t.Logf("agent log:\n%s", h.logText())
	}
}

// pid is the running agent's process id.
func (h *harness) pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		h.t.Fatal("agent not running")
	}
	return h.cmd.Process.Pid
}

func (h *harness) hup() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		_ = h.cmd.Process.Signal(syscall.SIGHUP)
	}
}

// reply is what curl got.
type reply struct {
	status int
	reason string // x-ms-azure-proxy-reason
	body   string
}

// curl runs curl inside the test cgroup as uid (0 or 65534) against url
// with a Metadata header.
func (h *harness) curl(uid int, method, url string, extra ...string) reply {
	h.t.Helper()
	args := []string{"-s", "-S", "-m", "10", "-X", method, "-H", "Metadata: true", "-D", "-", "-o", "-", url}
	args = append(args, extra...)
	cmd := exec.Command("curl", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(h.cgFD.Fd())}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return reply{status: -1, body: strings.TrimSpace(stderr)}
	}
	return parseReply(string(out))
}

func parseReply(s string) reply {
	head, body, _ := strings.Cut(s, "\r\n\r\n")
	var r reply
	r.body = body
	for i, line := range strings.Split(head, "\r\n") {
		if i == 0 {
			f := strings.Fields(line)
			if len(f) > 1 {
				r.status, _ = strconv.Atoi(f[1])
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "x-ms-azure-proxy-reason") {
			r.reason = strings.TrimSpace(v)
		}
	}
	return r
}

func (h *harness) url(ep hostproto.Endpoint, target string) string {
	a := h.emu.Addrs()
	addr := map[hostproto.Endpoint]string{hostproto.IMDS: a.IMDS, hostproto.WireServer: a.WireServer, hostproto.HostGAPlugin: a.HostGA}[ep]
	return "http://" + addr + target
}

// lastRecord returns the emulator's latest record for an endpoint and
// target, or nil.
func (h *harness) lastRecord(ep hostproto.Endpoint, target string) *hostsim.Record {
	recs := h.emu.Verifications(0)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Endpoint == ep.String() && recs[i].RawTarget == target {
			return &recs[i]
		}
	}
	return nil
}

// count returns how many records match.
func (h *harness) count(match func(hostsim.Record) bool) int {
	n := 0
	for _, r := range h.emu.Verifications(0) {
		if match(r) {
			n++
		}
	}
	return n
}

// eventually retries f for up to 10 s.
func (h *harness) eventually(what string, f func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within 10 s\nagent log:\n%s", what, h.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) apply(p hostsim.Patch) {
	h.t.Helper()
	if _, err := h.emu.Apply(&p); err != nil {
		h.t.Fatal(err)
	}
}

func modePtr(m hostproto.Mode) *hostproto.Mode { return &m }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
