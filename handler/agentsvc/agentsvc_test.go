package agentsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/unitfile"
	"github.com/mspguest/msp/handler/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(Options) bool
	}{
		{"production", nil, "", func(o Options) bool { return !o.TestMode && o.Layout.Binary() == "/usr/sbin/msp-agent" }},
		{"test mode", map[string]string{"MSP_ROOT": "/tmp/r", "MSP_LISTEN": "127.0.0.1:4000", "MSP_CGROUP": "/sys/fs/cgroup/t",
			"MSP_ENDPOINTS": `{"imds":"127.0.0.2:80","wireServer":"127.0.0.3:80","hostGAPlugin":"127.0.0.3:32526"}`}, "",
			func(o Options) bool {
				return o.TestMode && o.Layout.Binary() == "/tmp/r/usr/sbin/msp-agent" && o.Layout.BpffsDir() == "/tmp/r/sys/fs/bpf/msp-agent" &&
					o.Endpoints.HostGAPlugin == "127.0.0.3:32526" && o.Listen == "127.0.0.1:4000" && o.Cgroup == "/sys/fs/cgroup/t"
			}},
		{"relative root", map[string]string{"MSP_ROOT": "r"}, "MSP_ROOT", nil},
		{"endpoints without root", map[string]string{"MSP_ENDPOINTS": `{"imds":"127.0.0.2:80"}`}, "need MSP_ROOT", nil},
		{"bad endpoints", map[string]string{"MSP_ROOT": "/r", "MSP_ENDPOINTS": `{"imsd":"x"}`}, "MSP_ENDPOINTS", nil},
		{"endpoint without port", map[string]string{"MSP_ROOT": "/r", "MSP_ENDPOINTS": `{"imds":"127.0.0.2"}`}, "MSP_ENDPOINTS.imds", nil},
		{"non-loopback listener", map[string]string{"MSP_ROOT": "/r", "MSP_LISTEN": "0.0.0.0:80"}, "loopback", nil},
		{"poll interval", map[string]string{"MSP_ROOT": "/r", "MSP_POLL_SECONDS": "1"}, "", func(o Options) bool { return o.PollSeconds == 1 }},
		{"bad poll interval", map[string]string{"MSP_ROOT": "/r", "MSP_POLL_SECONDS": "0"}, "MSP_POLL_SECONDS", nil},
		{"poll interval without root", map[string]string{"MSP_POLL_SECONDS": "1"}, "need MSP_ROOT", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := OptionsFromEnv(envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(o) {
				t.Fatalf("got %+v, %v", o, err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	o := Options{TestMode: true, Layout: Layout{Root: "/r"}, Listen: "127.0.0.1:4000", PollSeconds: 2}
	data, err := NewConfig(o, "Debug", "deny", json.RawMessage(`{"defaultAccess":"deny"}`), nil).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(data, &got)
	want := `{"bpffsDir":"/r/sys/fs/bpf/msp-agent","listen":"127.0.0.1:4000","logDir":"/r/var/log/msp-agent","logLevel":"debug","netnsPolicy":"deny","pollIntervalSeconds":2,"settings":{"imds":{"defaultAccess":"deny"}},"stateDir":"/r/var/lib/msp-agent"}`
	if g, _ := json.Marshal(got); string(g) != want {
		t.Fatalf("got %s\nwant %s", g, want)
	}
	data, _ = NewConfig(Options{Layout: Layout{Root: "/"}}, "", "", nil, nil).Marshal()
	if strings.Contains(string(data), "settings") || strings.Contains(string(data), "endpoints") {
		t.Fatalf("defaults written: %s", data)
	}
}

func TestInstaller(t *testing.T) {
	root := t.TempDir()
	l := Layout{Root: root}
	src := filepath.Join(root, "new-agent")
	os.WriteFile(src, []byte("v1"), 0o644)
	for i, want := range []bool{true, false} {
		changed, err := InstallFile(src, l.Binary(), 0o755)
		if err != nil || changed != want {
			t.Fatalf("install %d: changed=%v, %v; want %v", i, changed, err, want)
		}
	}
	if info, _ := os.Stat(l.Binary()); info.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", info.Mode())
	}
	in := Installer{Layout: l}
	if err := in.Backup(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(src, []byte("v2"), 0o644)
	if changed, _ := InstallFile(src, l.Binary(), 0o755); !changed {
		t.Fatal("new content not installed")
	}
	if ok, err := in.Restore(); !ok || err != nil {
		t.Fatalf("restore: %v, %v", ok, err)
	}
	if data, _ := os.ReadFile(l.Binary()); string(data) != "v1" {
		t.Fatalf("restored %q", data)
	}
	if err := in.Purge(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := in.Restore(); ok {
		t.Fatal("restored after purge")
	}

	WriteIfChanged(l.ConfigFile(), []byte("{}"), 0o644)
	os.MkdirAll(filepath.Join(l.StateDir(), "keys"), 0o700)
	os.WriteFile(filepath.Join(l.StateDir(), "keys", "k.key"), nil, 0o600)
	os.MkdirAll(l.LogDir(), 0o750)
	os.WriteFile(l.AggregateStatus(), nil, 0o640)
	owned := func(p string) bool { return p == l.ConfigFile() }
	if err := in.Remove(owned); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{l.Binary(): false, l.StateDir(): false, l.ConfigFile(): true, l.AggregateStatus(): true} {
		if fileExists(p) != want {
			t.Errorf("%s exists=%v; want %v", p, !want, want)
		}
	}
}

// fakeSystemctl puts a systemctl on PATH that records its arguments, and
// fails for the arguments in failOn.
func fakeSystemctl(t *testing.T, failOn string) (calls func() []string) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if failOn != "" {
		script += "[ \"$*\" = \"" + failOn + "\" ] && { echo 'Failed: unit is masked' >&2; exit 1; }\n"
	}
	script += "exit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return func() []string {
		data, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
}

func TestSystemd(t *testing.T) {
	calls := fakeSystemctl(t, "")
	root := t.TempDir()
	handlerRoot := filepath.Join(root, "waagent", "Ext-1.0")
	s := Systemd{Layout: Layout{Root: root}, HandlerRoot: handlerRoot}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func() error
		want []string
	}{
		{"first apply", func() error { return s.Apply(ctx, Change{Binary: true, Config: true}) },
			[]string{"daemon-reload", "unmask msp-agent.service", "enable msp-agent.service", "restart msp-agent.service"}},
		{"nothing changed", func() error { return s.Apply(ctx, Change{}) },
			[]string{"unmask msp-agent.service", "enable msp-agent.service", "start msp-agent.service"}},
		{"config changed", func() error { return s.Apply(ctx, Change{Config: true}) },
			[]string{"unmask msp-agent.service", "enable msp-agent.service", "start msp-agent.service", "kill --signal=SIGHUP --kill-whom=main msp-agent.service"}},
		{"binary changed", func() error { return s.Apply(ctx, Change{Binary: true}) },
			[]string{"unmask msp-agent.service", "enable msp-agent.service", "restart msp-agent.service"}},
		{"start monitor", func() error { return s.StartMonitor(ctx) },
			[]string{"daemon-reload", "enable msp-handler-monitor.service", "restart msp-handler-monitor.service"}},
		{"stop monitor", func() error { return s.StopMonitor(ctx) }, []string{"stop msp-handler-monitor.service"}},
		{"stop", func() error { return s.Stop(ctx) }, []string{"stop msp-agent.service"}},
		{"remove", func() error { return s.Remove(ctx) },
			[]string{"disable --now msp-handler-monitor.service", "disable --now msp-agent.service", "daemon-reload"}},
	} {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := calls(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: systemctl calls %q; want %q", tc.name, got, tc.want)
		}
	}
	if fileExists(filepath.Join(s.Layout.UnitDir(), AgentUnit)) || fileExists(filepath.Join(s.Layout.UnitDir(), MonitorUnit)) {
		t.Error("units left after Remove")
	}
}

// TestSystemdKeepsPackageUnit: a package-installed agent keeps its own
// unit; the handler writes none and only reloads the configuration.
func TestSystemdKeepsPackageUnit(t *testing.T) {
	calls := fakeSystemctl(t, "")
	root := t.TempDir()
	s := Systemd{Layout: Layout{Root: root}, HandlerRoot: filepath.Join(root, "Ext-1.0")}
	if err := s.Apply(context.Background(), Change{Config: true, PackageOwned: true}); err != nil {
		t.Fatal(err)
	}
	if fileExists(filepath.Join(s.Layout.UnitDir(), AgentUnit)) {
		t.Error("the handler wrote its unit over a package-installed agent's")
	}
	want := "unmask msp-agent.service|enable msp-agent.service|start msp-agent.service|kill --signal=SIGHUP --kill-whom=main msp-agent.service"
	if got := strings.Join(calls(), "|"); got != want {
		t.Errorf("systemctl calls %q; want %q", got, want)
	}
}

func TestSystemdUnits(t *testing.T) {
	fakeSystemctl(t, "")
	root := t.TempDir()
	handlerRoot := filepath.Join(root, "Ext-1.0")
	s := Systemd{Layout: Layout{Root: root}, HandlerRoot: handlerRoot}
	if err := s.Apply(context.Background(), Change{}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartMonitor(context.Background()); err != nil {
		t.Fatal(err)
	}
	agentUnit, _ := os.ReadFile(filepath.Join(s.Layout.UnitDir(), AgentUnit))
	if !bytes.Equal(agentUnit, unitfile.Service) {
		t.Errorf("agent unit is not the hardened agent/unitfile one:\n%s", agentUnit)
	}
	mon, _ := os.ReadFile(filepath.Join(s.Layout.UnitDir(), MonitorUnit))
	if !strings.Contains(string(mon), "ExecStart="+handlerRoot+"/bin/msp-handler monitor") {
		t.Errorf("monitor unit:\n%s", mon)
	}
	// A unit shipped in the package wins over the built-in one.
	os.MkdirAll(filepath.Join(handlerRoot, "systemd"), 0o755)
	os.WriteFile(filepath.Join(handlerRoot, "systemd", AgentUnit), []byte("[Service]\nExecStart=/usr/sbin/msp-agent\n"), 0o644)
	s.Apply(context.Background(), Change{})
	if got, _ := os.ReadFile(filepath.Join(s.Layout.UnitDir(), AgentUnit)); string(got) != "[Service]\nExecStart=/usr/sbin/msp-agent\n" {
		t.Errorf("packaged unit not installed: %s", got)
	}
}

func TestSystemdFailureNamesTheCall(t *testing.T) {
	fakeSystemctl(t, "enable msp-agent.service")
	s := Systemd{Layout: Layout{Root: t.TempDir()}, HandlerRoot: t.TempDir()}
	err := s.Apply(context.Background(), Change{})
	if err == nil || !strings.Contains(err.Error(), "systemctl enable msp-agent.service") || !strings.Contains(err.Error(), "masked") {
		t.Fatalf("got %v", err)
	}
}

func TestAgentCommands(t *testing.T) {
	bin, err := testbin.Build(testbin.FakeAgent, "2.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"stateDir":"`+dir+`/state","logDir":"`+dir+`/log","bpffsDir":"`+dir+`/bpf"}`), 0o600)
	a := Agent{Binary: bin, Config: cfg}
	ctx := context.Background()
	if v, err := a.Version(ctx); err != nil || v != "2.0.1" {
		t.Fatalf("version %q, %v", v, err)
	}
	var nr *NotReadyError
	if err := a.WaitReady(ctx, time.Second); !errors.As(err, &nr) {
		t.Fatalf("got %v; want not ready", err)
	}
	os.MkdirAll(dir+"/state", 0o700)
	os.WriteFile(dir+"/state/fake-fail", []byte("eBPF: kernel lacks bpf_link"), 0o600)
	if err := a.WaitReady(ctx, time.Second); err == nil || errors.As(err, &nr) || !strings.Contains(err.Error(), "kernel lacks bpf_link") {
		t.Fatalf("got %v; want the agent's error", err)
	}
	os.MkdirAll(dir+"/bpf", 0o700)
	os.WriteFile(dir+"/bpf/fake-pin", nil, 0o600)
	if err := a.Cleanup(ctx); err != nil || fileExists(dir+"/bpf/fake-pin") {
		t.Fatalf("cleanup: %v", err)
	}
	if _, err := (Agent{Binary: filepath.Join(dir, "none")}).Version(ctx); err == nil {
		t.Fatal("missing binary accepted")
	}
}
