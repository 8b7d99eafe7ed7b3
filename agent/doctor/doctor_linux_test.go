package doctor_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/hostsim"
)

// testIP is this package's loopback address for the emulated endpoints
// (127.0.5.x; per process, ebpf.md §9).
var testIP = fmt.Sprintf("127.0.5.%d", os.Getpid()%100+100)

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// doctor runs `mspctl doctor --config cfg` inside the cgroup the agent
// attaches to and returns its exit code and output lines by check name.
func doctor(t *testing.T, mspctl, cfg string, cg *os.File) (int, map[string]string, string) {
	t.Helper()
	cmd := exec.Command(mspctl, "doctor", "--config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	var last string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && (f[0] == "ok" || f[0] == "FAIL"):
			last = f[1]
			lines[last] = l
		case len(f) > 0 && f[0] == "fix:" && last != "":
			lines[last] += "\n" + l
		}
	}
	return code, lines, string(out)
}

// TestDoctorAgainstRealAgent runs mspctl doctor against the real
// msp-agent and msp-hostsim on loopback (a child cgroup, a private
// bpffs): every check passes and the test request went through the
// agent; with the agent stopped, the agent, modes, key and interception
// checks fail with what to do, and the exit status is 1.
func TestDoctorAgainstRealAgent(t *testing.T) {
	cg := bpftest.NewCgroup(t)
	bins := t.TempDir()
	agent := build(t, bins, "../../cmd/msp-agent")
	mspctl := build(t, bins, "../../cmd/mspctl")

	lg := logrus.New()
	lg.SetOutput(io.Discard)
	emu, err := hostsim.Start(hostsim.Config{IMDSAddr: testIP + ":0", WireServerAddr: testIP + ":0", HostGAAddr: testIP + ":0", Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	a := emu.Addrs()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(dir, "bpffs"), unix.MNT_DETACH) })
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "config.json")
	data, _ := json.Marshal(map[string]any{
		"listen": listen, "stateDir": filepath.Join(dir, "state"), "logDir": filepath.Join(dir, "log"),
		"endpoints": map[string]string{"imds": a.IMDS, "wireServer": a.WireServer, "hostGAPlugin": a.HostGA},
		"cgroup":    cg, "bpffsDir": filepath.Join(dir, "bpffs", "msp-agent"), "pollIntervalSeconds": 1,
	})
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cgFD, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer cgFD.Close()

	var log strings.Builder
	cmd := exec.Command(agent, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		if cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		cmd.Process = nil
	}
	defer func() {
		stop()
		_ = exec.Command(agent, "--config", cfg, "--cleanup").Run()
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	}()
	if out, err := exec.Command(agent, "--config", cfg, "--status", "--wait", "30").CombinedOutput(); err != nil {
		t.Fatalf("msp-agent --status --wait 30: %v: %s", err, out)
	}
	// status.json is written once provisioning ends; wait for it.
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(filepath.Join(dir, "log", "status.json")); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	code, lines, out := doctor(t, mspctl, cfg, cgFD)
	t.Logf("agent running:\n%s", out)
	if code != 0 {
		t.Errorf("exit %d with the agent running, want 0", code)
	}
	for _, name := range []string{"kernel", "cgroup2", "ebpf", "bpffs", "agent", "status", "modes", "key", "interception"} {
		if !strings.HasPrefix(lines[name], "ok ") {
			t.Errorf("check %s: %q, want ok", name, lines[name])
		}
	}
	if !strings.Contains(lines["interception"], "relayed and signed by the agent") {
		t.Errorf("interception: %q, want the request relayed by the agent", lines["interception"])
	}
	if !strings.Contains(lines["modes"], "imds=") || !strings.Contains(lines["key"], "latched") {
		t.Errorf("modes %q, key %q: want the modes per endpoint and the key's age", lines["modes"], lines["key"])
	}

	stop()
	code, lines, out = doctor(t, mspctl, cfg, cgFD)
	t.Logf("agent stopped:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d with the agent stopped, want 1", code)
	}
	for _, name := range []string{"agent", "status", "modes", "key", "interception"} {
		if !strings.HasPrefix(lines[name], "FAIL") || !strings.Contains(lines[name], "fix: ") {
			t.Errorf("check %s: %q, want FAIL with a fix", name, lines[name])
		}
	}
	for _, name := range []string{"agent", "interception"} {
		if !strings.Contains(lines[name], "systemctl start msp-agent") {
			t.Errorf("%s: %q, want the command that starts the agent", name, lines[name])
		}
	}
	for _, name := range []string{"kernel", "cgroup2", "ebpf", "bpffs"} {
		if !strings.HasPrefix(lines[name], "ok ") {
			t.Errorf("check %s: %q, want ok (the machine did not change)", name, lines[name])
		}
	}
}
