package unitfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the bound for `systemd-analyze security`
// (GuestProxyAgent's unit scores 5.9).
const maxExposure = 3.0

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (apt-get install systemd): %v", err)
	}
	return p
}

// installedRoot lays the unit and a stand-in binary out under a temporary
// root, as a package would install them.
func installedRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"usr/sbin/msp-agent", []byte("#!/bin/sh\n"), 0o755},
		{"etc/systemd/system/" + Name, Service, 0o644},
	} {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestUnitVerifies(t *testing.T) {
	sa := systemdAnalyze(t)
	root := installedRoot(t)
	out, err := exec.Command(sa, "verify", "--root="+root, "/etc/systemd/system/"+Name).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUnitExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	dir := t.TempDir()
	path := filepath.Join(dir, Name)
	if err := os.WriteFile(path, Service, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "security", "--offline=yes", "--no-pager", Name)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput() // exits non-zero above its threshold; the score decides
	m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(Name) + `: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in the output:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure %.1f (bound %.1f)", score, maxExposure)
	if score > maxExposure {
		t.Errorf("exposure %.1f exceeds %.1f:\n%s", score, maxExposure, out)
	}
}

// TestUnitKeepsWhatTheAgentNeeds pins the settings the agent cannot run
// without, so hardening the unit further cannot silently break it.
func TestUnitKeepsWhatTheAgentNeeds(t *testing.T) {
	unit := string(Service)
	for _, want := range []string{
		"Restart=always",
		"DefaultDependencies=no",
		"Before=network-pre.target shutdown.target",
		"ExecStart=/usr/sbin/msp-agent\n",
		"ExecStartPre=+/usr/sbin/msp-agent --prepare",
		"IPAddressAllow=localhost 168.63.129.16 169.254.169.254",
		"IPAddressDeny=any",
		"Environment=GOMEMLIMIT=",
		"ReadWritePaths=/sys/fs/bpf",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// hidepid would hide other users' processes from the identity lookup.
	if strings.Contains(unit, "ProtectProc=") {
		t.Error("unit sets ProtectProc=: the agent must read every caller's /proc/<pid>")
	}
	caps := Capabilities()
	for _, c := range []string{"CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_SYS_PTRACE"} {
		if !slices.Contains(caps, c) {
			t.Errorf("bounding set %v lacks %s", caps, c)
		}
	}
	if len(caps) != 6 {
		t.Errorf("bounding set %v: want exactly the six capabilities the agent uses", caps)
	}
}
