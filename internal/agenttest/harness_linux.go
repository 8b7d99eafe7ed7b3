// Package agenttest runs the real msp-agent as a process for end-to-end
// tests, isolated as ebpf.md §9 prescribes: msp-hostsim on a per-package
// loopback address, the agent attached to a child cgroup with its own
// directories and a private bpffs, and curl clients placed in that cgroup
// as root or as another user. Linux and root only.
package agenttest

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

// Options configure New.
type Options struct {
	// Subnet is the first three octets of the loopback address of the
	// emulated endpoints, one per test package so that parallel packages
	// do not collide (ebpf.md §9), e.g. "127.0.3"; the last octet is
	// pid%100+100.
	Subnet string
}

var (
	buildOnce sync.Once
	agentBin  string
	buildErr  error
)

// AgentBinary builds cmd/msp-agent once per test binary, as the package
// ships it.
func AgentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "msp-agent-test-")
		if err != nil {
			buildErr = err
			return
		}
		agentBin = filepath.Join(dir, "msp-agent")
		out, err := exec.Command("go", "build", "-o", agentBin, "github.com/mspguest/msp/cmd/msp-agent").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

// Harness is one isolated agent: msp-hostsim on testIP, the agent as a
// real process attached to a child cgroup with its own directories, a
// private bpffs, and clients placed in that cgroup.
type Harness struct {
	t *testing.T
	// Bin is the msp-agent binary under test.
	Bin string
	// Dir holds the agent's state/, log/, bpffs/ and config.json.
	Dir string
	// Cgroup is the child cgroup the agent attaches to; CgroupFD places
	// clients in it.
	Cgroup   string
	CgroupFD *os.File
	// Emu is the host emulator on the test's loopback address.
	Emu *hostsim.Emulator
	// Listen is the agent's listener.
	Listen netip.AddrPort
	// Config is the agent's configuration as JSON values; WriteConfig
	// writes it to ConfigPath.
	Config     map[string]any
	ConfigPath string
	// Wrap runs the agent through a command, e.g. setpriv.
	Wrap []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

func New(t *testing.T, o Options) *Harness {
	t.Helper()
	cg := bpftest.NewCgroup(t)
	bin := AgentBinary(t)
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	if o.Subnet == "" {
		t.Fatal("agenttest.Options.Subnet is required: give the package its own 127.0.x")
	}
	testIP := fmt.Sprintf("%s.%d", o.Subnet, os.Getpid()%100+100)
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
	h := &Harness{t: t, Bin: bin, Dir: dir, Cgroup: cg, CgroupFD: fd, Emu: emu, Listen: freePort(t), ConfigPath: filepath.Join(dir, "config.json")}
	a := emu.Addrs()
	h.Config = map[string]any{
		"listen":   h.Listen.String(),
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
	h.WriteConfig()
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

func (h *Harness) WriteConfig() {
	h.t.Helper()
	data, err := json.MarshalIndent(h.Config, "", "  ")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(h.ConfigPath+".tmp", data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(h.ConfigPath+".tmp", h.ConfigPath); err != nil {
		h.t.Fatal(err)
	}
}

// start runs the agent and waits until `msp-agent --status --wait 30`
// reports provisioning finished.
func (h *Harness) Start() {
	h.t.Helper()
	h.mu.Lock()
	if h.cmd != nil {
		h.mu.Unlock()
		h.t.Fatal("agent already running")
	}
	argv := append(append([]string{}, h.Wrap...), h.Bin, "--config", h.ConfigPath)
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
	code, out := h.Status(30)
	if code != 0 {
		h.t.Fatalf("msp-agent --status --wait 30: exit %d: %s\nagent log:\n%s", code, out, h.LogText())
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

func (h *Harness) LogText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return ""
	}
	return h.log.String()
}

// status runs `msp-agent --status --wait N`.
func (h *Harness) Status(wait int) (int, string) {
	out, err := exec.Command(h.Bin, "--config", h.ConfigPath, "--status", "--wait", strconv.Itoa(wait)).CombinedOutput()
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
func (h *Harness) Stop(sig syscall.Signal) error {
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
		h.t.Fatalf("agent did not stop within 20 s after %v\n%s", sig, h.LogText())
		return nil
	}
}

func (h *Harness) stopQuietly() {
	if err := h.Stop(syscall.SIGTERM); err != nil && h.t.Failed() {
		h.t.Logf("agent exit: %v", err)
	}
	if h.t.Failed() {
		h.t.Logf("agent log:\n%s", h.LogText())
	}
}

// pid is the running agent's process id.
func (h *Harness) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		h.t.Fatal("agent not running")
	}
	return h.cmd.Process.Pid
}

func (h *Harness) HUP() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		_ = h.cmd.Process.Signal(syscall.SIGHUP)
	}
}

// Reply is what curl got: Status -1 means curl failed (Body holds its
// error), Reason is x-ms-azure-proxy-reason.
type Reply struct {
	Status int
	Reason string
	Body   string
}

// curl runs curl inside the test cgroup as uid (0 or 65534) against url
// with a Metadata header.
func (h *Harness) Curl(uid int, method, url string, extra ...string) Reply {
	h.t.Helper()
	args := []string{"-s", "-S", "-m", "10", "-X", method, "-H", "Metadata: true", "-D", "-", "-o", "-", url}
	args = append(args, extra...)
	cmd := exec.Command("curl", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(h.CgroupFD.Fd())}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return Reply{Status: -1, Body: strings.TrimSpace(stderr)}
	}
	return parseReply(string(out))
}

func parseReply(s string) Reply {
	head, body, _ := strings.Cut(s, "\r\n\r\n")
	var r Reply
	r.Body = body
	for i, line := range strings.Split(head, "\r\n") {
		if i == 0 {
			f := strings.Fields(line)
			if len(f) > 1 {
				r.Status, _ = strconv.Atoi(f[1])
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "x-ms-azure-proxy-reason") {
			r.Reason = strings.TrimSpace(v)
		}
	}
	return r
}

func (h *Harness) URL(ep hostproto.Endpoint, target string) string {
	a := h.Emu.Addrs()
	addr := map[hostproto.Endpoint]string{hostproto.IMDS: a.IMDS, hostproto.WireServer: a.WireServer, hostproto.HostGAPlugin: a.HostGA}[ep]
	return "http://" + addr + target
}

// lastRecord returns the emulator's latest record for an endpoint and
// target, or nil.
func (h *Harness) LastRecord(ep hostproto.Endpoint, target string) *hostsim.Record {
	recs := h.Emu.Verifications(0)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Endpoint == ep.String() && recs[i].RawTarget == target {
			return &recs[i]
		}
	}
	return nil
}

// count returns how many records match.
func (h *Harness) Count(match func(hostsim.Record) bool) int {
	n := 0
	for _, r := range h.Emu.Verifications(0) {
		if match(r) {
			n++
		}
	}
	return n
}

// eventually retries f for up to 10 s.
func (h *Harness) Eventually(what string, f func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within 10 s\nagent log:\n%s", what, h.LogText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *Harness) Apply(p hostsim.Patch) {
	h.t.Helper()
	if _, err := h.Emu.Apply(&p); err != nil {
		h.t.Fatal(err)
	}
}

func ModePtr(m hostproto.Mode) *hostproto.Mode { return &m }

func Context(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
