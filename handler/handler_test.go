package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/fakewaagent"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/internal/testbin"
	"github.com/mspguest/msp/handler/supervisor"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// fakeEnv is the injected Environment: variables, a kernel probe and a
// clock of the test's choosing.
type fakeEnv struct {
	vars  map[string]string
	probe error
	now   time.Time
}

func (f *fakeEnv) Getenv(k string) string { return f.vars[k] }
func (f *fakeEnv) Executable() string     { return "/nonexistent/bin/msp-handler" }
func (f *fakeEnv) ProbeKernel() error     { return f.probe }
func (f *fakeEnv) SystemdIsPID1() bool    { return false }
func (f *fakeEnv) Now() time.Time         { return f.now }

// fakeCtl records the controller calls and runs the agent binary directly
// (a minimal supervisor), so readiness checks see a real process.
type fakeCtl struct {
	layout      agentsvc.Layout
	calls       []string
	stopMonErr  error
	startedPids []int
}

func (f *fakeCtl) Name() string { return "fake" }

func (f *fakeCtl) Apply(ctx context.Context, c agentsvc.Change) error {
	f.calls = append(f.calls, fmt.Sprintf("apply binary=%v config=%v", c.Binary, c.Config))
	pidFile := f.layout.AgentPidFile()
	if c.Binary {
		_ = supervisor.Stop(pidFile, f.layout.Binary(), 5*time.Second)
	}
	if _, ok := supervisor.Find(pidFile, f.layout.Binary()); ok {
		if c.Config {
			return supervisor.Signal(pidFile, f.layout.Binary(), syscall.SIGHUP)
		}
		return nil
	}
	pid, err := supervisor.Spawn(f.layout.Binary(), []string{"--config", f.layout.ConfigFile()}, nil,
		filepath.Join(f.layout.LogDir(), "agent.out"), pidFile)
	f.startedPids = append(f.startedPids, pid)
	return err
}

func (f *fakeCtl) Stop(context.Context) error {
	f.calls = append(f.calls, "stop")
	return supervisor.Stop(f.layout.AgentPidFile(), f.layout.Binary(), 5*time.Second)
}
func (f *fakeCtl) StartMonitor(context.Context) error {
	f.calls = append(f.calls, "startMonitor")
	return nil
}
func (f *fakeCtl) StopMonitor(context.Context) error {
	f.calls = append(f.calls, "stopMonitor")
	return f.stopMonErr
}
func (f *fakeCtl) Remove(ctx context.Context) error {
	f.calls = append(f.calls, "remove")
	return supervisor.Stop(f.layout.AgentPidFile(), f.layout.Binary(), 5*time.Second)
}

func (f *fakeCtl) take() string {
	s := strings.Join(f.calls, "|")
	f.calls = nil
	return s
}

// fixture is a handler root laid out as waagent does, MSP_ROOT beside it.
type fixture struct {
	t    *testing.T
	root string
	env  *fakeEnv
	ctl  *fakeCtl
	l    agentsvc.Layout
}

func newFixture(t *testing.T) *fixture {
	base := t.TempDir()
	lib := filepath.Join(base, "lib")
	root := filepath.Join(lib, "P.T-1.0")
	for _, d := range []string{"bin", "config", "status"} {
		os.MkdirAll(filepath.Join(root, d), 0o700)
	}
	logDir := filepath.Join(base, "log")
	henvDoc := fmt.Sprintf(`[{"name":"P.T","version":1.0,"handlerEnvironment":{"logFolder":%q,"configFolder":%q,"statusFolder":%q,"heartbeatFile":%q,"eventsFolder":%q}}]`,
		logDir, filepath.Join(root, "config"), filepath.Join(root, "status"), filepath.Join(root, "heartbeat.log"), filepath.Join(logDir, "events"))
	os.WriteFile(filepath.Join(root, henv.FileName), []byte(henvDoc), 0o644)
	msp := filepath.Join(base, "msp")
	f := &fixture{
		t: t, root: root, l: agentsvc.Layout{Root: msp},
		env: &fakeEnv{now: time.Now(), vars: map[string]string{
			"AZURE_GUEST_AGENT_EXTENSION_PATH": root, "ConfigSequenceNumber": "0", "MSP_ROOT": msp,
		}},
	}
	f.ctl = &fakeCtl{layout: f.l}
	f.setAgent("1.0.0")
	t.Cleanup(func() { _ = supervisor.Stop(f.l.AgentPidFile(), f.l.Binary(), 5*time.Second) })
	return f
}

// setAgent puts an agent of version v in the package.
func (f *fixture) setAgent(v string) {
	bin, err := testbin.Build(testbin.FakeAgent, v)
	if err != nil {
		f.t.Fatal(err)
	}
	data, _ := os.ReadFile(bin)
	os.WriteFile(filepath.Join(f.root, "bin", "msp-agent"), data, 0o755)
}

func (f *fixture) settings(seq int, public string) {
	doc := `{"runtimeSettings":[{"handlerSettings":{"publicSettings":` + public + `}}]}`
	os.WriteFile(filepath.Join(f.root, "config", strconv.Itoa(seq)+".settings"), []byte(doc), 0o600)
	f.env.vars["ConfigSequenceNumber"] = strconv.Itoa(seq)
}

func (f *fixture) run(verb string) (int, string) {
	var out bytes.Buffer
	code := Run([]string{verb}, f.env, Options{Stdout: &out, Stderr: &out, Controller: f.ctl, ReadyWait: 5 * time.Second})
	return code, out.String()
}

type statusDoc []struct {
	Status struct {
		Operation        string
		Status           string
		Code             int
		FormattedMessage struct{ Message string }
		Substatus        []struct{ Name, Status string }
	}
}

func (f *fixture) status(seq int) statusDoc {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.root, "status", strconv.Itoa(seq)+".status"))
	if err != nil {
		f.t.Fatal(err)
	}
	var d statusDoc
	if err := json.Unmarshal(data, &d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func TestRunDispatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"no verb", nil, nil, ExitUsage},
		{"unknown verb", []string{"restart"}, nil, ExitUsage},
		{"two verbs", []string{"enable", "disable"}, nil, ExitUsage},
		{"no handler environment", []string{"enable"}, map[string]string{"AZURE_GUEST_AGENT_EXTENSION_PATH": t.TempDir()}, ExitHandlerEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			got := Run(tc.args, &fakeEnv{vars: tc.env}, Options{Stderr: &out})
			if got != tc.want || out.Len() == 0 {
				t.Fatalf("exit %d (%q); want %d and a message", got, out.String(), tc.want)
			}
		})
	}
	for verb, op := range operations {
		if op.run == nil || op.name == "" || op.failCode == 0 || op.budget == 0 {
			t.Errorf("operation %s is incomplete", verb)
		}
		if limit, ok := fakewaagent.Timeouts[verb]; ok && op.budget > limit-time.Minute {
			t.Errorf("operation %s may run %s; waagent kills it at %s", verb, op.budget, limit)
		}
	}
}

func TestBadTestModeVariables(t *testing.T) {
	f := newFixture(t)
	f.env.vars["MSP_LISTEN"] = "0.0.0.0:80"
	if code, _ := f.run("enable"); code != ExitHandlerEnv {
		t.Fatalf("exit %d", code)
	}
	if st := f.status(0)[0].Status; st.Status != "error" || !strings.Contains(st.FormattedMessage.Message, "MSP_LISTEN") {
		t.Fatalf("status %+v", st)
	}
}

func TestKernelProbeFailure(t *testing.T) {
	f := newFixture(t)
	os.MkdirAll(filepath.Join(f.l.Root, "etc"), 0o755)
	os.WriteFile(filepath.Join(f.l.Root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\n"), 0o644)
	f.env.probe = errors.New("kernel lacks helper bpf_get_netns_cookie in cgroup_sock_addr programs")
	f.settings(0, `{}`)
	if code, _ := f.run("enable"); code != ExitUnsupportedOS {
		t.Fatalf("exit %d; want 6", code)
	}
	st := f.status(0)[0].Status
	if st.Operation != "CheckOSVersionSupport" || st.Code != 6 || !strings.Contains(st.FormattedMessage.Message, "bpf_get_netns_cookie") {
		t.Fatalf("status %+v", st)
	}
	if f.ctl.take() != "" {
		t.Fatal("the controller was called on an unsupported machine")
	}
}

func TestEnable(t *testing.T) {
	f := newFixture(t)
	f.settings(0, `{"imds":{"defaultAccess":"allow","mode":"audit"}}`)
	steps := []struct {
		name     string
		prepare  func()
		code     int
		calls    string
		state    string
		seq      int
		markerAt int
	}{
		{"first enable installs and starts", nil, 0, "apply binary=true config=true|startMonitor", "success", 0, 0},
		{"same sequence converges without changes", nil, 0, "apply binary=false config=false|startMonitor", "success", 0, 0},
		{"new settings reload", func() { f.settings(1, `{"imds":{"defaultAccess":"allow","mode":"enforce"}}`) }, 0,
			"apply binary=false config=true|startMonitor", "success", 1, 1},
		{"invalid settings change nothing", func() { f.settings(2, `{"imds":{"defaultAccess":"maybe"}}`) }, ExitInvalidSettings,
			"", "error", 2, 1},
		{"missing settings file", func() { f.env.vars["ConfigSequenceNumber"] = "7" }, ExitInvalidSettings, "", "error", 7, 1},
	}
	for _, s := range steps {
		if s.prepare != nil {
			s.prepare()
		}
		before, _ := os.ReadFile(f.l.ConfigFile())
		code, out := f.run("enable")
		if code != s.code {
			t.Fatalf("%s: exit %d (%s); want %d", s.name, code, out, s.code)
		}
		if calls := f.ctl.take(); calls != s.calls {
			t.Errorf("%s: controller calls %q; want %q", s.name, calls, s.calls)
		}
		st := f.status(s.seq)[0].Status
		if st.Status != s.state || st.Operation != "Enable" {
			t.Errorf("%s: status %+v", s.name, st)
		}
		if s.state == "success" && len(st.Substatus) != 3 {
			t.Errorf("%s: substatus %+v", s.name, st.Substatus)
		}
		if s.state == "error" {
			after, _ := os.ReadFile(f.l.ConfigFile())
			if !bytes.Equal(before, after) {
				t.Errorf("%s: the configuration changed", s.name)
			}
		}
		if m := henv.ReadMarker(f.root); m.Seq != s.markerAt {
			t.Errorf("%s: mrseq %d; want %d", s.name, m.Seq, s.markerAt)
		}
	}
	if len(f.ctl.startedPids) != 1 {
		t.Fatalf("the agent was started %d times; want once", len(f.ctl.startedPids))
	}
	cfg, _ := os.ReadFile(f.l.ConfigFile())
	if !strings.Contains(string(cfg), `"mode": "enforce"`) {
		t.Fatalf("config %s", cfg)
	}
}

// TestEnableRollsBack: a new agent that fails provisioning is replaced by
// the previous one, and the error says so.
func TestEnableRollsBack(t *testing.T) {
	f := newFixture(t)
	f.settings(0, `{}`)
	if code, out := f.run("enable"); code != 0 {
		t.Fatal(out)
	}
	good, _ := os.ReadFile(f.l.Binary())
	broken := "#!/bin/sh\ncase \"$*\" in *--status*) echo 'keyLatchStatus - attestation rejected'; exit 2;; *--version*) echo 9.9.9;; *) sleep 30;; esac\n"
	os.WriteFile(filepath.Join(f.root, "bin", "msp-agent"), []byte(broken), 0o755)
	code, out := f.run("enable")
	if code != ExitServiceStart {
		t.Fatalf("exit %d (%s); want 7", code, out)
	}
	msg := f.status(0)[0].Status.FormattedMessage.Message
	if !strings.Contains(msg, "attestation rejected") || !strings.Contains(msg, "previous agent was restored") {
		t.Fatalf("message %q", msg)
	}
	if now, _ := os.ReadFile(f.l.Binary()); !bytes.Equal(now, good) {
		t.Fatal("the previous agent binary was not restored")
	}
}

func TestDisableKeepsTheAgent(t *testing.T) {
	f := newFixture(t)
	f.ctl.stopMonErr = errors.New("no such unit")
	if code, _ := f.run("disable"); code != 0 {
		t.Fatalf("disable failed with exit %d; a failing disable blocks removal", code)
	}
	if calls := f.ctl.take(); calls != "stopMonitor" {
		t.Fatalf("calls %q; disable must not stop the agent", calls)
	}
	st := f.status(0)[0].Status
	if st.Status != "success" || !strings.Contains(st.FormattedMessage.Message, "keeps running") {
		t.Fatalf("status %+v", st)
	}
	hb, _ := os.ReadFile(filepath.Join(f.root, "heartbeat.log"))
	if !strings.Contains(string(hb), `"NotReady"`) {
		t.Fatalf("heartbeat %s", hb)
	}
}

func TestUninstall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tagAge   time.Duration // 0: no marker
		calls    string
		removed  bool
		keyKept  bool
		tagAfter bool
	}{
		{"removal", 0, "remove", true, false, false},
		{"during an upgrade", time.Minute, "stopMonitor", false, true, true},
		{"stale upgrade marker", 3 * time.Hour, "remove", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.settings(0, `{}`)
			if code, out := f.run("enable"); code != 0 {
				t.Fatal(out)
			}
			f.ctl.take()
			tag := filepath.Join(filepath.Dir(f.root), updateTag)
			if tc.tagAge > 0 {
				os.WriteFile(tag, nil, 0o600)
				old := time.Now().Add(-tc.tagAge)
				os.Chtimes(tag, old, old)
			}
			key := filepath.Join(f.l.StateDir(), "keys", "fake.key")
			if code, out := f.run("uninstall"); code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			if calls := f.ctl.take(); calls != tc.calls {
				t.Fatalf("calls %q; want %q", calls, tc.calls)
			}
			_, binErr := os.Stat(f.l.Binary())
			_, keyErr := os.Stat(key)
			_, tagErr := os.Stat(tag)
			if os.IsNotExist(binErr) != tc.removed || (keyErr == nil) != tc.keyKept || (tc.tagAge > 0 && (tagErr == nil) != tc.tagAfter) {
				t.Fatalf("binary removed=%v key kept=%v tag=%v", os.IsNotExist(binErr), keyErr == nil, tagErr == nil)
			}
			if tc.removed {
				if _, err := os.Stat(filepath.Join(f.l.BpffsDir(), "fake-pin")); !os.IsNotExist(err) {
					t.Fatal("msp-agent --cleanup did not run")
				}
			}
		})
	}
}

func TestUpdateAndResetState(t *testing.T) {
	f := newFixture(t)
	f.env.vars["VERSION"], f.env.vars["AZURE_GUEST_AGENT_UPDATING_FROM_VERSION"] = "1.1", "1.0"
	if code, out := f.run("update"); code != 0 {
		t.Fatal(out)
	}
	tag := filepath.Join(filepath.Dir(f.root), updateTag)
	if _, err := os.Stat(tag); err != nil {
		t.Fatal("update wrote no upgrade marker")
	}
	henv.WriteMarker(f.root, 4, "h")
	if code, out := f.run("resetstate"); code != 0 {
		t.Fatal(out)
	}
	if _, err := os.Stat(tag); !os.IsNotExist(err) || henv.ReadMarker(f.root).Seq != -1 {
		t.Fatal("resetstate left state behind")
	}
}

// TestEnableKeepsPackageInstalledAgent: when a distribution package (the
// msp-agent .deb) owns /usr/sbin/msp-agent, enable keeps that binary and
// its unit and only writes the configuration (issue 11 item 3,
// handler-contract.md §8.8).
func TestEnableKeepsPackageInstalledAgent(t *testing.T) {
	f := newFixture(t)
	f.settings(0, `{"imds":{"defaultAccess":"allow","mode":"audit"}}`)
	// The package's agent: a different build than the extension bundles.
	pkgBin, err := testbin.Build(testbin.FakeAgent, "9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(pkgBin)
	if err := os.MkdirAll(filepath.Dir(f.l.Binary()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.l.Binary(), data, 0o755); err != nil {
		t.Fatal(err)
	}
	var asked []string
	var out bytes.Buffer
	code := Run([]string{"enable"}, f.env, Options{Stdout: &out, Stderr: &out, Controller: f.ctl, ReadyWait: 5 * time.Second,
		Owner: func(p string) bool { asked = append(asked, p); return p == f.l.Binary() }})
	if code != 0 {
		t.Fatalf("enable: exit %d: %s", code, out.String())
	}
	if got, _ := os.ReadFile(f.l.Binary()); !bytes.Equal(got, data) {
		t.Error("enable replaced the package-installed agent binary")
	}
	if calls := f.ctl.take(); calls != "apply binary=false config=true|startMonitor" {
		t.Errorf("controller calls %q; want the configuration applied, no binary change", calls)
	}
	if cfg, err := os.ReadFile(f.l.ConfigFile()); err != nil || !strings.Contains(string(cfg), `"mode": "audit"`) {
		t.Errorf("config not written: %v %s", err, cfg)
	}
	if len(asked) == 0 {
		t.Error("the package owner was never asked")
	}
}

// TestBundledAgentBesideTheHandler: in the published zip the shim runs
// bin/<arch>/msp-handler, and the agent of the same architecture is beside
// it; a flat layout (bin/msp-agent) still works.
func TestBundledAgentBesideTheHandler(t *testing.T) {
	root := t.TempDir()
	arch := filepath.Join(root, "bin", "amd64")
	if err := os.MkdirAll(arch, 0o755); err != nil {
		t.Fatal(err)
	}
	handlerExe := filepath.Join(arch, "msp-handler")
	if got, want := BundledAgent(root, handlerExe), filepath.Join(root, "bin", "msp-agent"); got != want {
		t.Errorf("no agent beside the handler: %s; want the flat layout %s", got, want)
	}
	if err := os.WriteFile(filepath.Join(arch, "msp-agent"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := BundledAgent(root, handlerExe), filepath.Join(arch, "msp-agent"); got != want {
		t.Errorf("BundledAgent = %s; want the agent beside the handler %s", got, want)
	}
}
