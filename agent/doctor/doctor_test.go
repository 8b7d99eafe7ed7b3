package doctor

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/config"
	"github.com/mspguest/msp/agent/hostproto"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		release string
		want    bool
	}{
		{"6.18.44-fc-v1300", true},
		{"5.8.0", true},
		{"5.10.0-28-cloud-amd64", true},
		{"5.7.19", false},
		{"4.19.0-27-amd64", false},
		{"6.1", true},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.release, MinKernel); got != tt.want {
			t.Errorf("versionAtLeast(%q, %s) = %v, want %v", tt.release, MinKernel, got, tt.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte(`# HELP msp_key_age_seconds Seconds since the signing key was latched.
# TYPE msp_key_age_seconds gauge
msp_key_age_seconds 42.5
msp_effective_mode{endpoint="imds"} 1
msp_effective_mode{endpoint="wireserver"} 2
msp_effective_mode{endpoint="hostga"} 0
msp_open_connections 3
`))
	if m.keyAge != 42.5 {
		t.Errorf("key age = %v, want 42.5", m.keyAge)
	}
	want := map[string]hostproto.Mode{"imds": hostproto.ModeAudit, "wireserver": hostproto.ModeEnforce, "hostga": hostproto.ModeDisabled}
	for ep, md := range want {
		if m.modes[ep] != md {
			t.Errorf("mode %s = %v, want %v", ep, m.modes[ep], md)
		}
	}
	if m := parseMetrics([]byte("msp_open_connections 1\n")); m.keyAge >= 0 || len(m.modes) != 0 {
		t.Errorf("no key, no modes: %+v", m)
	}
}

// TestMachineChecks: each machine check fails with its fix when the
// machine lacks the feature, without an agent to talk to.
func TestMachineChecks(t *testing.T) {
	good := System{
		KernelRelease: func() (string, error) { return "6.1.0", nil },
		Cgroup2Root:   func() (string, error) { return "/sys/fs/cgroup", nil },
		ProbeKernel:   func() error { return nil },
		IsBPFFS:       func(string) (bool, error) { return true, nil },
	}
	tests := []struct {
		name   string
		change func(*System)
		check  string
		fix    string
	}{
		{"old kernel", func(s *System) { s.KernelRelease = func() (string, error) { return "5.4.0-150", nil } }, "kernel", "upgrade to Linux 5.8"},
		{"no cgroup2", func(s *System) { s.Cgroup2Root = func() (string, error) { return "", errors.New("no cgroup2 mount") } }, "cgroup2", "unified cgroup hierarchy"},
		{"no hooks", func(s *System) {
			s.ProbeKernel = func() error { return errors.New("kernel lacks the cgroup getpeername4 hook") }
		}, "ebpf", "run as root"},
		{"no bpffs", func(s *System) { s.IsBPFFS = func(string) (bool, error) { return false, nil } }, "bpffs", "mount -t bpf bpf"},
		{"bpffs parent missing", func(s *System) { s.IsBPFFS = func(string) (bool, error) { return false, os.ErrNotExist } }, "bpffs", "msp-agent --prepare"},
	}
	cfg := config.Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := good
			tt.change(&sys)
			checks := []Check{kernelCheck(sys), cgroupCheck(cfg, sys), ebpfCheck(sys), bpffsCheck(cfg, sys)}
			for _, c := range checks {
				if c.Name == tt.check && (c.OK || !strings.Contains(c.Fix, tt.fix)) {
					t.Errorf("%s: %+v, want a failure with fix containing %q", c.Name, c, tt.fix)
				}
				if c.Name != tt.check && !c.OK {
					t.Errorf("%s failed: %+v", c.Name, c)
				}
			}
			var out bytes.Buffer
			if Print(&out, checks) {
				t.Error("Print reported all passed")
			}
			if !strings.Contains(out.String(), "FAIL  "+tt.check) {
				t.Errorf("output lacks the FAIL line:\n%s", out.String())
			}
		})
	}
}
