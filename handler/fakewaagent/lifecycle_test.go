package fakewaagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/handler/internal/testbin"
	"github.com/mspguest/msp/handler/supervisor"
)

const (
	extName = "Contoso.Security.MSP.MspProxyAgentLinux"
	handler = "github.com/mspguest/msp/cmd/msp-handler"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// buildPackage lays out a handler package: the committed manifest, the
// handler binary and an agent of the given version.
func buildPackage(t *testing.T, version, agentVersion string) Package {
	t.Helper()
	hbin, err := testbin.Build(handler, "")
	if err != nil {
		t.Fatal(err)
	}
	abin, err := testbin.Build(testbin.FakeAgent, agentVersion)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pkg-"+version)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	for src, dst := range map[string]string{
		"../../manifest/HandlerManifest.json": "HandlerManifest.json",
		hbin:                                  "bin/msp-handler",
		abin:                                  "bin/msp-agent",
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

type world struct {
	t       *testing.T
	w       *Waagent
	root    string   // MSP_ROOT
	outputs []string // every command's result and output
}

func newWorld(t *testing.T) *world {
	if os.Geteuid() != 0 {
		t.Skip("the handler's OS gate probes eBPF, which needs root (CI runs as root)")
	}
	base := t.TempDir()
	w, err := New(filepath.Join(base, "var/lib/waagent"), filepath.Join(base, "var/log/azure"), extName)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "msproot")
	w.Env = []string{"PATH=" + os.Getenv("PATH"), "MSP_ROOT=" + root, "MSP_LISTEN=127.0.0.1:3999",
		`MSP_ENDPOINTS={"imds":"127.0.0.2:80","wireServer":"127.0.0.3:80","hostGAPlugin":"127.0.0.3:32526"}`}
	wd := &world{t: t, w: w, root: root}
	w.Trace = func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		wd.outputs = append(wd.outputs, line)
		t.Log(line)
	}
	t.Cleanup(wd.stopAll)
	return wd
}

// stopAll ends what the handler left running, whatever the test did.
func (wd *world) stopAll() {
	run := filepath.Join(wd.root, "run/msp-handler")
	supervisor.Stop(filepath.Join(run, "monitor.pid"), "monitor", 5*time.Second)
	supervisor.Stop(filepath.Join(run, "supervisor.pid"), "supervise", 15*time.Second)
}

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

func (wd *world) agentPid() int {
	pid, ok := supervisor.Find(wd.path("var/lib/msp-agent/fake-agent.pid"), "msp-agent")
	if !ok {
		return 0
	}
	return pid
}

func (wd *world) starts() []string {
	data, _ := os.ReadFile(wd.path("var/lib/msp-agent/fake-starts"))
	var versions []string // one per start
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			versions = append(versions, f[1])
		}
	}
	return versions
}

func (wd *world) agentConfig() map[string]json.RawMessage {
	wd.t.Helper()
	data, err := os.ReadFile(wd.path("etc/msp-agent/config.json"))
	if err != nil {
		wd.t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		wd.t.Fatal(err)
	}
	return cfg
}

func item(mode, access string, paths ...string) map[string]any {
	it := map[string]any{"defaultAccess": access}
	if mode != "" {
		it["mode"] = mode
	}
	if len(paths) > 0 {
		var privs []any
		var names []string
		for i, p := range paths {
			name := "p" + string(rune('a'+i))
			privs = append(privs, map[string]any{"name": name, "path": p})
			names = append(names, name)
		}
		it["rules"] = map[string]any{
			"privileges":      privs,
			"roles":           []any{map[string]any{"name": "r", "privileges": names}},
			"identities":      []any{map[string]any{"name": "root", "userName": "root"}},
			"roleAssignments": []any{map[string]any{"role": "r", "identities": []string{"root"}}},
		}
	}
	return it
}

// TestLifecycle replays waagent's command sequences against the built
// handler with the fake agent, in test mode with the supervisor.
func TestLifecycle(t *testing.T) {
	wd := newWorld(t)
	w := wd.w
	v1, v2 := buildPackage(t, "1.0.0", "1.0.0"), buildPackage(t, "1.1.0", "1.1.0")
	const secret = "do-not-log-me"
	settings0 := map[string]any{"imds": item("audit", "allow", "/metadata/identity"), "wireServer": item("", "deny", "/"), "logLevel": "info"}

	// First install and enable: the agent is installed, configured,
	// running and ready; status success with the three substatuses.
	wd.mustSucceed(w.FirstInstall(v1, 0, settings0, map[string]string{"token": secret}))
	st := wd.status("1.0.0", 0)
	if st.Operation != "Enable" || st.Status != "success" || len(st.Substatus) != 3 {
		t.Fatalf("status after enable: %+v", st)
	}
	for i, name := range []string{"ProxyAgentStatus", "ProxyAgentConnectionSummary", "ProxyAgentFailedAuthenticationSummary"} {
		if st.Substatus[i].Name != name || st.Substatus[i].Status != "success" {
			t.Errorf("substatus %d: %+v; want %s success", i, st.Substatus[i], name)
		}
	}
	if !strings.Contains(st.Substatus[0].Message, `"version":"1.0.0"`) {
		t.Errorf("agent status substatus: %s", st.Substatus[0].Message)
	}
	hb, err := w.ReadHeartbeat("1.0.0")
	if err != nil || hb.Status != "Ready" {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	pid := wd.agentPid()
	if pid == 0 {
		t.Fatal("the agent is not running after enable")
	}
	cfg := wd.agentConfig()
	var got struct {
		Imds, WireServer map[string]any
	}
	json.Unmarshal(cfg["settings"], &got)
	if got.Imds["mode"] != "audit" || got.WireServer["mode"] != nil || string(cfg["listen"]) != `"127.0.0.1:3999"` ||
		!strings.Contains(string(cfg["endpoints"]), "127.0.0.2:80") || !strings.Contains(string(cfg["stateDir"]), wd.root) {
		t.Fatalf("agent config: %s", mustJSON(cfg))
	}
	if info, err := os.Stat(wd.path("etc/msp-agent/config.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v, %v", info, err)
	}
	if fi, err := os.Stat(wd.path("usr/sbin/msp-agent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("agent binary: %v, %v", fi, err)
	}
	events, _ := os.ReadDir(filepath.Join(w.LogFolder(), "events"))
	if len(events) == 0 {
		t.Error("no telemetry events in eventsFolder")
	}
	for _, e := range events {
		if !regexp.MustCompile(`^\d+\.json$`).MatchString(e.Name()) {
			t.Errorf("event file %q does not match waagent's pattern", e.Name())
		}
	}
	testbin.WaitFor(t, "the monitor", func() bool {
		_, ok := supervisor.Find(wd.path("run/msp-handler/monitor.pid"), "monitor")
		return ok
	})

	t.Run("enable again with the same sequence number", func(t *testing.T) {
		r, err := w.Run("1.0.0", "enable", 0, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
		if wd.agentPid() != pid || len(wd.starts()) != 1 {
			t.Fatalf("the agent was restarted: starts %v", wd.starts())
		}
		if st := wd.status("1.0.0", 0); st.Status != "success" {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("settings change applies live", func(t *testing.T) {
		stricter := map[string]any{"imds": item("enforce", "allow", "/metadata/identity", "/metadata/instance"), "wireServer": item("", "deny", "/")}
		r, err := w.Enable("1.0.0", 1, stricter, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
		if wd.agentPid() != pid {
			t.Fatal("a settings change restarted the agent")
		}
		testbin.WaitFor(t, "the agent to reload", func() bool {
			seen, _ := os.ReadFile(wd.path("var/lib/msp-agent/fake-config.json"))
			return strings.Contains(string(seen), `"enforce"`) && strings.Contains(string(seen), "/metadata/instance")
		})
		if st := wd.status("1.0.0", 1); st.Status != "success" {
			t.Fatalf("status %+v", st)
		}
		if data, _ := os.ReadFile(filepath.Join(w.Root("1.0.0"), "config", "0.settings")); len(data) != 0 {
			t.Error("the old settings file with protected settings was not blanked")
		}
	})

	t.Run("invalid settings keep the old configuration", func(t *testing.T) {
		before, _ := os.ReadFile(wd.path("etc/msp-agent/config.json"))
		bad := map[string]any{"imds": map[string]any{"defaultAccess": "deny", "mode": "strict"}}
		r, err := w.Enable("1.0.0", 2, bad, nil)
		if err != nil || r.ExitCode != 11 {
			t.Fatalf("%v, %v; want exit 11", r, err)
		}
		st := wd.status("1.0.0", 2)
		if st.Status != "error" || st.Code != 11 || !strings.Contains(st.Message, "imds.mode") {
			t.Fatalf("status %+v; want an error naming imds.mode", st)
		}
		after, _ := os.ReadFile(wd.path("etc/msp-agent/config.json"))
		if string(before) != string(after) || wd.agentPid() != pid {
			t.Fatal("invalid settings changed the configuration or the agent")
		}
	})

	t.Run("upgrade in waagent's order keeps the agent and its key", func(t *testing.T) {
		key := wd.path("var/lib/msp-agent/keys/fake.key")
		keyBefore, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		settings3 := map[string]any{"imds": item("enforce", "allow", "/metadata/identity")}
		s, err := w.Upgrade("1.0.0", v2, 3, settings3, nil)
		wd.mustSucceed(s, err)
		var order []string
		for _, r := range s {
			order = append(order, r.Version+" "+r.Verb)
		}
		if want := "1.0.0 disable|1.1.0 update|1.0.0 uninstall|1.1.0 install|1.1.0 enable"; strings.Join(order, "|") != want {
			t.Fatalf("order %q", order)
		}
		starts := wd.starts()
		if len(starts) != 2 || starts[1] != "1.1.0" {
			t.Fatalf("the running agent is not the new one: %v", starts)
		}
		if keyAfter, err := os.ReadFile(key); err != nil || string(keyAfter) != string(keyBefore) {
			t.Fatal("the upgrade lost the agent's key")
		}
		if st := wd.status("1.1.0", 3); st.Status != "success" || !strings.Contains(st.Substatus[0].Message, `"version":"1.1.0"`) {
			t.Fatalf("status %+v", st)
		}
		if _, err := os.Stat(filepath.Join(w.Lib, "msp-update.tag")); !os.IsNotExist(err) {
			t.Error("the upgrade marker survived the new enable")
		}
		if _, err := os.Stat(wd.path("var/lib/msp-agent/handler-backup")); !os.IsNotExist(err) {
			t.Error("the backup of the old agent survived a successful upgrade")
		}
	})

	t.Run("uninstall leaves nothing but logs", func(t *testing.T) {
		s, err := w.Remove("1.1.0", 3)
		wd.mustSucceed(s, err)
		if wd.agentPid() != 0 {
			t.Fatal("the agent still runs")
		}
		if _, ok := supervisor.Find(wd.path("run/msp-handler/supervisor.pid"), "supervise"); ok {
			t.Fatal("the supervisor still runs")
		}
		var left []string
		filepath.Walk(wd.root, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				rel, _ := filepath.Rel(wd.root, p)
				left = append(left, rel)
			}
			return nil
		})
		for _, p := range left {
			if !strings.HasPrefix(p, "var/log/msp-agent/") {
				t.Errorf("left behind: %s", p)
			}
		}
		logs, _ := os.ReadDir(w.LogFolder())
		if len(logs) == 0 {
			t.Error("the handler's logs are gone")
		}
		assertNoSecret(t, w.Log, secret)
		assertNoSecret(t, wd.root, secret)
		for _, out := range wd.outputs {
			if strings.Contains(out, secret) {
				t.Errorf("a command printed the protected settings: %s", out)
			}
		}
	})
}

func assertNoSecret(t *testing.T, dir, secret string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), secret) {
				t.Errorf("%s contains the protected settings", p)
			}
		}
		return nil
	})
}

func mustJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestUnsupportedOS: an unsupported distribution gets the
// CheckOSVersionSupport error status and exit 6, and nothing installed.
func TestUnsupportedOS(t *testing.T) {
	wd := newWorld(t)
	os.MkdirAll(wd.path("etc"), 0o755)
	os.WriteFile(wd.path("etc/os-release"), []byte("ID=arch\nPRETTY_NAME=\"Arch Linux\"\n"), 0o644)
	s, err := wd.w.FirstInstall(buildPackage(t, "1.0.0", "1.0.0"), 0, map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].ExitCode != 6 {
		t.Fatalf("got %v; want install to exit 6", s)
	}
	st := wd.status("1.0.0", 0)
	if st.Operation != "CheckOSVersionSupport" || st.Status != "error" || !strings.Contains(st.Message, "Arch Linux") {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(wd.path("usr/sbin/msp-agent")); !os.IsNotExist(err) {
		t.Fatal("the agent was installed on an unsupported OS")
	}
}

// TestAgentNotReady: an agent that finishes provisioning with an error
// fails enable with an actionable error status and exit 7.
func TestAgentNotReady(t *testing.T) {
	wd := newWorld(t)
	os.MkdirAll(wd.path("var/lib/msp-agent"), 0o700)
	os.WriteFile(wd.path("var/lib/msp-agent/fake-fail"), []byte("ebpfProgramStatus - kernel lacks bpf_link"), 0o600)
	s, err := wd.w.FirstInstall(buildPackage(t, "1.0.0", "1.0.0"), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[1].ExitCode != 7 {
		t.Fatalf("got %v; want enable to exit 7", s)
	}
	st := wd.status("1.0.0", 0)
	if st.Status != "error" || st.Code != 7 || !strings.Contains(st.Message, "kernel lacks bpf_link") {
		t.Fatalf("status %+v", st)
	}
}

// TestSmimeFallback: when `openssl cms` fails, the foundation's `openssl
// smime` path decrypts the protected settings.
func TestSmimeFallback(t *testing.T) {
	wd := newWorld(t)
	real, err := execLookPath("openssl")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	script := "#!/bin/sh\necho \"$1\" >> " + calls + "\n[ \"$1\" = cms ] && exit 3\nexec " + real + " \"$@\"\n"
	os.WriteFile(filepath.Join(bin, "openssl"), []byte(script), 0o755)
	pkg := buildPackage(t, "1.0.0", "1.0.0")
	// The certificate and the encryption use the real openssl.
	if err := wd.w.Deploy(pkg); err != nil {
		t.Fatal(err)
	}
	if err := wd.w.WriteSettings("1.0.0", 0, map[string]any{}, map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	wd.w.Env = append(wd.w.Env, "PATH="+bin+":"+os.Getenv("PATH"))
	for _, verb := range []string{"install", "enable"} {
		if r, err := wd.w.Run("1.0.0", verb, 0, nil); err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
	}
	used, _ := os.ReadFile(calls)
	if !strings.Contains(string(used), "cms") || !strings.Contains(string(used), "smime") {
		t.Fatalf("openssl calls %q; want cms then smime", used)
	}
}
