package fakewaagent

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/handler/internal/testbin"
	"github.com/mspguest/msp/handler/supervisor"
	"github.com/mspguest/msp/hostsim"
)

const (
	goalState = "/machine/?comp=goalstate"
	instance  = "/metadata/instance?api-version=2021-02-01"
)

// TestLifecycle replays waagent's command sequences against the built
// handler, which installs and runs the real msp-agent under its
// supervisor; every step is judged by the status and heartbeat files
// waagent reads and by what the emulated host verified.
func TestLifecycle(t *testing.T) {
	wd := newWorld(t)
	w := wd.w
	v1, v2 := buildPackage(t, "1.0.0", testbin.Agent), buildPackage(t, "1.1.0", testbin.Agent)
	const secret = "do-not-log-me"
	// The host audits IMDS; the settings follow the host's mode (none
	// given) and let the guest agent (root) use WireServer.
	audit := hostproto.ModeAudit
	if _, err := wd.emu.Apply(&hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: &audit}}); err != nil {
		t.Fatal(err)
	}
	settings0 := map[string]any{"imds": item("", "deny"), "wireServer": item("", "deny", "/"), "logLevel": "info"}

	// First install and enable: the agent is installed, configured,
	// running, has latched a key, and root's WireServer requests reach
	// the host signed and valid.
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
	key := wd.emu.View().KeyGUID
	if key == nil {
		t.Fatal("the agent latched no key at the host")
	}
	if !strings.Contains(st.Substatus[0].Message, `"version":"1.0.0"`) || !strings.Contains(st.Substatus[0].Message, *key) {
		t.Errorf("agent status substatus lacks the version or the key %s: %s", *key, st.Substatus[0].Message)
	}
	keyFile := wd.path("var/lib/msp-agent/keys/" + *key + ".key")
	keyBefore, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("the latched key is not in the agent's state: %v", err)
	}
	hb, err := w.ReadHeartbeat("1.0.0")
	if err != nil || hb.Status != "Ready" {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	pid := wd.agentPid()
	if pid == 0 {
		t.Fatal("the agent is not running after enable")
	}
	if wd.attachedPrograms() == 0 {
		t.Fatal("nothing attached to the test cgroup")
	}
	wd.assertSignedAndValid("wireserver", goalState)
	if r := wd.curl(65534, "wireserver", goalState); r.status != 403 {
		t.Fatalf("nobody to WireServer: %+v; want 403 from the agent", r)
	}
	if fi, err := os.Stat(wd.path("usr/sbin/msp-agent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("agent binary: %v, %v", fi, err)
	}
	if info, err := os.Stat(wd.path("etc/msp-agent/config.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v, %v", info, err)
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

	t.Run("the monitor reports from the agent's status.json", func(t *testing.T) {
		// The monitor (period 1 s here) rewrites the status file from the
		// agent's aggregate status: its message differs from enable's.
		testbin.WaitFor(t, "the monitor's status", func() bool {
			st, err := w.ReadStatus("1.0.0", 0)
			return err == nil && st.Message == "msp-agent 1.0.0 is running" && len(st.Substatus) == 3 &&
				strings.Contains(st.Substatus[0].Message, *key)
		})
	})

	t.Run("enable again with the same sequence number", func(t *testing.T) {
		r, err := w.Run("1.0.0", "enable", 0, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
		if wd.agentPid() != pid {
			t.Fatal("the agent was restarted")
		}
		if st := wd.status("1.0.0", 0); st.Status != "success" {
			t.Fatalf("status %+v", st)
		}
		wd.assertSignedAndValid("wireserver", goalState)
	})

	t.Run("settings change applies live", func(t *testing.T) {
		// Before: IMDS in the host's audit mode, default deny: nobody's
		// request is forwarded (would-deny recorded).
		if r := wd.curl(65534, "imds", instance); r.status != 200 {
			t.Fatalf("nobody to IMDS in audit: %+v; want forwarded", r)
		}
		tr := wd.startTraffic("wireserver", goalState+"&client=settings")
		time.Sleep(300 * time.Millisecond)
		// After: a stricter mode (enforce) and a new rule for root.
		stricter := map[string]any{"imds": item("enforce", "deny", "/metadata/instance"), "wireServer": item("", "deny", "/")}
		r, err := w.Enable("1.0.0", 1, stricter, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
		testbin.WaitFor(t, "the agent to apply the settings", func() bool {
			return wd.curl(65534, "imds", instance).status == 403
		})
		time.Sleep(300 * time.Millisecond)
		codes := tr.stop()
		if wd.agentPid() != pid {
			t.Fatal("a settings change restarted the agent")
		}
		if len(codes) != 1 || codes["200"] == 0 {
			t.Fatalf("client codes during the change %v; want only 200 (no restart gap)", codes)
		}
		if r := wd.curl(0, "imds", instance); r.status != 200 {
			t.Fatalf("root to IMDS under the new rule: %+v", r)
		}
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
		// Still enforcing the last good configuration.
		if r := wd.curl(65534, "imds", instance); r.status != 403 {
			t.Fatalf("nobody to IMDS: %+v; want 403 (the last good settings)", r)
		}
		wd.assertSignedAndValid("wireserver", goalState)
	})

	t.Run("a configuration change that needs a new process restarts the agent at once", func(t *testing.T) {
		// pollIntervalSeconds is not applied live: the agent exits 75 and
		// the supervisor runs it again without back-off.
		wd.setEnv("MSP_POLL_SECONDS", "2")
		start := time.Now()
		r, err := w.Enable("1.0.0", 2, map[string]any{"imds": item("enforce", "deny", "/metadata/instance"), "wireServer": item("", "deny", "/")}, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
		testbin.WaitFor(t, "a new agent", func() bool { p := wd.agentPid(); return p != 0 && p != pid })
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the agent came back after %s; exit 75 must not wait for the crash back-off", d)
		}
		log, _ := os.ReadFile(filepath.Join(w.LogFolder(), "supervisor.log"))
		if !strings.Contains(string(log), "exit 75") {
			t.Errorf("supervisor.log does not show exit 75:\n%s", tail(log, 2000))
		}
		pid = wd.agentPid()
		testbin.WaitFor(t, "the new agent to serve", func() bool { return wd.curl(0, "wireserver", goalState).status == 200 })
		wd.assertSignedAndValid("wireserver", goalState)
	})

	t.Run("the supervisor restarts a crashed agent after a back-off", func(t *testing.T) {
		since := wd.emu.Verifications(0)
		var seq uint64
		if len(since) > 0 {
			seq = since[len(since)-1].Seq
		}
		if err := syscallKill(pid); err != nil {
			t.Fatal(err)
		}
		// While it is down, the pinned programs keep failing closed.
		if r := wd.curl(0, "wireserver", goalState+"&client=down"); r.status == 200 {
			if rec := wd.lastRecord(goalState + "&client=down"); rec == nil || !rec.Signed {
				t.Fatalf("a request reached the host unsigned while the agent was down: %+v", rec)
			}
		}
		testbin.WaitFor(t, "a restarted agent", func() bool { p := wd.agentPid(); return p != 0 && p != pid })
		log, _ := os.ReadFile(filepath.Join(w.LogFolder(), "supervisor.log"))
		if !strings.Contains(string(log), "restarting the agent after back-off") {
			t.Errorf("supervisor.log does not show the back-off:\n%s", tail(log, 2000))
		}
		pid = wd.agentPid()
		testbin.WaitFor(t, "the restarted agent to serve", func() bool { return wd.curl(0, "wireserver", goalState).status == 200 })
		wd.assertSignedAndValid("wireserver", goalState)
		wd.assertNoBypass(seq)
	})

	t.Run("upgrade in waagent's order under traffic: no request bypasses the agent", func(t *testing.T) {
		recs := wd.emu.Verifications(0)
		seq := recs[len(recs)-1].Seq
		target := goalState + "&client=upgrade"
		tr := wd.startTraffic("wireserver", target)
		time.Sleep(300 * time.Millisecond)
		settings3 := map[string]any{"imds": item("enforce", "deny", "/metadata/instance"), "wireServer": item("", "deny", "/")}
		s, err := w.Upgrade("1.0.0", v2, 3, settings3, nil)
		wd.mustSucceed(s, err)
		time.Sleep(500 * time.Millisecond)
		codes := tr.stop()
		var order []string
		for _, r := range s {
			order = append(order, r.Version+" "+r.Verb)
		}
		if want := "1.0.0 disable|1.1.0 update|1.0.0 uninstall|1.1.0 install|1.1.0 enable"; strings.Join(order, "|") != want {
			t.Fatalf("order %q", order)
		}
		// Every request of the client the host saw was signed and valid;
		// the rest were refused locally while the agent restarted.
		forwarded := 0
		for _, r := range wd.emu.Verifications(seq) {
			if r.RawTarget != target {
				continue
			}
			forwarded++
			if !r.Signed || !r.Valid {
				t.Errorf("a client request reached the host unsigned or invalid during the upgrade: %+v", r)
			}
		}
		if forwarded != codes["200"] || codes["200"] == 0 {
			t.Errorf("client saw %v; the host recorded %d forwarded requests", codes, forwarded)
		}
		for c, n := range codes {
			if c != "200" && c != "000" {
				t.Errorf("%d requests answered %s during the upgrade", n, c)
			}
		}
		t.Logf("during the upgrade: %v (000 = refused locally while the agent restarted)", codes)
		wd.assertNoBypass(seq)

		st := wd.status("1.1.0", 3)
		if st.Status != "success" || !strings.Contains(st.Substatus[0].Message, `"version":"1.1.0"`) {
			t.Fatalf("status %+v", st)
		}
		if p := wd.agentPid(); p == 0 || p == pid {
			t.Fatalf("the agent was not replaced (pid %d, before %d)", p, pid)
		}
		if keyAfter, err := os.ReadFile(keyFile); err != nil || string(keyAfter) != string(keyBefore) {
			t.Fatal("the upgrade lost the agent's key")
		}
		if now := wd.emu.View().KeyGUID; now == nil || *now != *key {
			t.Fatalf("the host's key changed from %s to %v: the upgrade acquired a new key", *key, now)
		}
		wd.assertSignedAndValid("wireserver", goalState)
		if _, err := os.Stat(filepath.Join(w.Lib, "msp-update.tag")); !os.IsNotExist(err) {
			t.Error("the upgrade marker survived the new enable")
		}
		if _, err := os.Stat(wd.path("var/lib/msp-agent/handler-backup")); !os.IsNotExist(err) {
			t.Error("the backup of the old agent survived a successful upgrade")
		}
		hb, err := w.ReadHeartbeat("1.1.0")
		if err != nil || hb.Status != "Ready" {
			t.Fatalf("heartbeat %+v, %v", hb, err)
		}
	})

	t.Run("uninstall leaves nothing but logs", func(t *testing.T) {
		s, err := w.Remove("1.1.0", 3)
		wd.mustSucceed(s, err)
		if wd.agentPid() != 0 {
			t.Fatal("the agent still runs")
		}
		for _, p := range []string{"supervisor.pid", "monitor.pid"} {
			if _, ok := supervisor.Find(wd.path("run/msp-handler/"+p), strings.TrimSuffix(p, ".pid")); ok {
				t.Fatalf("%s: still running", p)
			}
		}
		if n := wd.attachedPrograms(); n != 0 {
			t.Fatalf("%d programs still attached to the test cgroup", n)
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
			// maps.debug and progs.debug are the bpffs mount's own files.
			if !strings.HasPrefix(p, "var/log/msp-agent/") && p != "sys/fs/bpf/maps.debug" && p != "sys/fs/bpf/progs.debug" {
				t.Errorf("left behind: %s", p) // pins, binary, unit, config, keys
			}
		}
		logs, _ := os.ReadDir(w.LogFolder())
		if len(logs) == 0 {
			t.Error("the handler's logs are gone")
		}
		assertNoSecret(t, w.Log, secret)
		assertNoSecret(t, wd.root, secret)
		wd.mu.Lock()
		defer wd.mu.Unlock()
		for _, out := range wd.outputs {
			if strings.Contains(out, secret) {
				t.Errorf("a command printed the protected settings: %s", out)
			}
		}
	})
}
