package daemon_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/status"
	"github.com/mspguest/msp/agent/unitfile"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/internal/agenttest"
)

const instance = "/metadata/instance?api-version=2021-02-01"

func isKeyAcquisition(r hostsim.Record) bool {
	return r.Endpoint == "wireserver" && r.Method == "POST" && strings.EqualFold(r.RawTarget, "/secure-channel/key")
}

// TestAgentProvisionsSignsAndRestarts: a first start without a key
// acquires and attests one and reports ready; requests are signed and
// verified by the host; WireServer is root-only; status, audit and
// metrics are written; a restart reuses the persisted key.
func TestAgentProvisionsSignsAndRestarts(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Start()

	keys := filepath.Join(h.Dir, "state", "keys")
	entries, err := os.ReadDir(keys)
	if err != nil {
		t.Fatal(err)
	}
	var keyFiles []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".key") {
			keyFiles = append(keyFiles, e.Name())
			if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %o; want 0600", fi.Mode().Perm())
			}
		}
	}
	if fi, _ := os.Stat(keys); fi.Mode().Perm() != 0o700 {
		t.Errorf("keys directory mode %o; want 0700", fi.Mode().Perm())
	}
	if len(keyFiles) != 1 {
		t.Fatalf("key files %v; want exactly one", keyFiles)
	}
	if n := h.Count(isKeyAcquisition); n != 1 {
		t.Errorf("%d key acquisitions; want 1", n)
	}

	for _, uid := range []int{0, 65534} {
		r := h.Curl(uid, "GET", h.URL(hostproto.IMDS, instance))
		if r.Status != 200 {
			t.Fatalf("uid %d IMDS: %+v", uid, r)
		}
		rec := h.LastRecord(hostproto.IMDS, instance)
		if rec == nil || !rec.Signed || !rec.Valid || rec.KeyGUID+".key" != keyFiles[0] {
			t.Fatalf("uid %d: emulator record %+v; want signed and valid with the latched key", uid, rec)
		}
		if rec.IsRoot == nil || *rec.IsRoot != (uid == 0) {
			t.Errorf("uid %d: isRoot claim %v", uid, rec.IsRoot)
		}
	}
	goal := "/machine/?comp=goalstate"
	if r := h.Curl(65534, "GET", h.URL(hostproto.WireServer, goal)); r.Status != 403 || r.Reason != "root-required" {
		t.Errorf("nobody to WireServer: %+v; want 403 root-required", r)
	}
	if r := h.Curl(0, "GET", h.URL(hostproto.WireServer, goal)); r.Status != 200 {
		t.Errorf("root to WireServer: %+v", r)
	}
	// A forged host header never reaches the host.
	h.Curl(0, "GET", h.URL(hostproto.IMDS, instance), "-H", "x-ms-azure-host-authorization: forged", "-H", "X-MS-AZURE-HOST-CLAIMS: {}")
	if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Valid {
		t.Errorf("request with forged headers: %+v", rec)
	} else {
		for _, hd := range rec.Headers {
			if strings.EqualFold(hd.Value, "forged") || hd.Value == "{}" {
				t.Errorf("forged header reached the host: %+v", hd)
			}
		}
	}

	// The extension's view: /gpa-aggregated-status through the
	// WireServer address as root, and status.json on disk.
	r := h.Curl(0, "GET", h.URL(hostproto.WireServer, "/gpa-aggregated-status"))
	var doc status.Document
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &doc) != nil {
		t.Fatalf("/gpa-aggregated-status: %+v", r)
	}
	if doc.ProxyAgentStatus.Status != status.Success || doc.ProxyAgentStatus.KeyLatchStatus.States.SecureChannelState != "WireServer Enforce -  IMDS Enforce - HostGA Enforce" {
		t.Errorf("status document %+v", doc.ProxyAgentStatus)
	}
	if r := h.Curl(65534, "GET", h.URL(hostproto.WireServer, "/gpa-aggregated-status")); r.Status != 403 {
		t.Errorf("/gpa-aggregated-status as nobody: %+v; want 403", r)
	}
	h.Eventually("status.json written", func() bool {
		_, err := status.ReadFile(filepath.Join(h.Dir, "log", status.FileName))
		return err == nil
	})
	h.Eventually("audit.jsonl has the requests", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.Dir, "log", "audit.jsonl"))
		return strings.Count(string(b), "\n") >= 5 && strings.Contains(string(b), `"reason":"root-required"`)
	})
	m, err := metrics.Fetch(agenttest.Context(t), filepath.Join(h.Dir, "state", "metrics.sock"))
	if err != nil || !strings.Contains(string(m), `msp_requests_total{endpoint="imds",decision="allow",status="200"}`) {
		t.Errorf("metrics: %v\n%s", err, m)
	}
	if strings.Contains(h.LogText(), keyMaterial(t, filepath.Join(keys, keyFiles[0]))) {
		t.Error("the agent log contains the key")
	}

	// Restart: the persisted key is reused, no new acquisition.
	if err := h.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: agent exited with %v", err)
	}
	h.Start()
	if n := h.Count(isKeyAcquisition); n != 1 {
		t.Errorf("%d key acquisitions after a restart; want the persisted key reused", n)
	}
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("after restart: %+v", r)
	}
	if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Valid || rec.KeyGUID+".key" != keyFiles[0] {
		t.Errorf("after restart: %+v", rec)
	}
}

// keyMaterial returns the base64 key of a key file, to search logs for.
func keyMaterial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.Key == "" {
		t.Fatalf("key file %s: %v", path, err)
	}
	return k.Key
}

// TestAgentFollowsHostModesAndSettings: host modes switch the redirects;
// settings make an endpoint stricter, never looser; an invalid reload
// keeps the last good configuration.
func TestAgentFollowsHostModesAndSettings(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Start()
	signedLast := func() bool {
		rec := h.LastRecord(hostproto.IMDS, instance)
		return rec != nil && rec.Signed && rec.Valid
	}
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 || !signedLast() {
		t.Fatalf("enforce: %+v", r)
	}

	// Host disables IMDS: the redirect goes, requests reach the host
	// directly, unsigned.
	h.Apply(hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: agenttest.ModePtr(hostproto.ModeDisabled)}})
	h.Eventually("IMDS no longer intercepted", func() bool {
		h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
		rec := h.LastRecord(hostproto.IMDS, instance)
		return rec != nil && !rec.Signed
	})

	// Settings enforce IMDS with deny by default while the host has it
	// disabled: the agent authorizes locally (guest-side protection).
	h.Config["settings"] = map[string]any{"imds": map[string]any{"mode": "enforce", "defaultAccess": "deny"}}
	h.WriteConfig()
	h.HUP()
	h.Eventually("settings enforce IMDS", func() bool {
		r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
		return r.Status == 403 && r.Reason == "default-deny"
	})

	// An invalid file is reported; the last good configuration stays.
	if err := os.WriteFile(h.ConfigPath, []byte(`{"settings": {"imds": {"mode": "strict"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.HUP()
	h.Eventually("invalid reload reported", func() bool {
		return strings.Contains(h.LogText(), "configuration not reloaded")
	})
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 403 || r.Reason != "default-deny" {
		t.Errorf("after an invalid reload: %+v; want the last good settings (403 default-deny)", r)
	}

	// Settings may not loosen: host enforce, settings audit stays enforce.
	h.Apply(hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: agenttest.ModePtr(hostproto.ModeEnforce)}})
	h.Config["settings"] = map[string]any{"imds": map[string]any{"mode": "audit", "defaultAccess": "deny"}}
	h.WriteConfig()
	h.HUP()
	h.Eventually("host enforce wins over settings audit", func() bool {
		r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
		return r.Status == 403 && r.Reason == "default-deny"
	})
	// A settings item without mode follows the host: host audit ⇒ the
	// would-deny is forwarded, signed.
	h.Apply(hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: agenttest.ModePtr(hostproto.ModeAudit)}})
	h.Config["settings"] = map[string]any{"imds": map[string]any{"defaultAccess": "deny"}}
	h.WriteConfig()
	h.HUP()
	h.Eventually("audit forwards the would-deny", func() bool {
		r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
		return r.Status == 200 && signedLast()
	})
	h.Eventually("the would-deny is in the audit log", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.Dir, "log", "audit.jsonl"))
		return strings.Contains(string(b), `"decision":"audit-deny"`)
	})
}

// TestAgentKeyRotationUnderLoad: a new incarnation rotates the key while
// clients keep sending; no request fails and every one the host sees is
// valid.
func TestAgentKeyRotationUnderLoad(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Start()
	before := h.Emu.View().AttestedKeyGUID
	stop := make(chan struct{})
	results := make(chan agenttest.Reply, 1000)
	go func() {
		defer close(results)
		for {
			select {
			case <-stop:
				return
			default:
			}
			results <- h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
		}
	}()
	time.Sleep(500 * time.Millisecond)
	inc := uint32(2)
	h.Apply(hostsim.Patch{KeyIncarnationID: &inc})
	h.Eventually("rotation attested", func() bool {
		v := h.Emu.View()
		return !v.Rotating && v.AttestedKeyGUID != nil && before != nil && *v.AttestedKeyGUID != *before
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	n := 0
	for r := range results {
		n++
		if r.Status != 200 {
			t.Errorf("request during rotation: %+v", r)
		}
	}
	bad := h.Count(func(r hostsim.Record) bool { return r.Endpoint == "imds" && (!r.Signed || !r.Valid) })
	t.Logf("rotation: %d requests, %d not valid at the host", n, bad)
	if n < 10 || bad != 0 {
		t.Errorf("%d requests, %d invalid at the host; want many, none invalid", n, bad)
	}
}

// TestAgentSurvivesHostOutage: the host refuses and fails for a while;
// the latched key keeps signing, and the agent recovers.
func TestAgentSurvivesHostOutage(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Start()
	if err := h.Emu.SetFault(hostsim.Fault{Endpoint: "wireserver", Kind: "http500", Count: 5}); err != nil {
		t.Fatal(err)
	}
	if err := h.Emu.SetFault(hostsim.Fault{Endpoint: "wireserver", Kind: "malformed-json", Count: 3}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
			t.Fatalf("during the outage: %+v", r)
		}
		if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Valid {
			t.Fatalf("during the outage the host saw %+v", rec)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(h.LogText(), "secure channel poll failed; previous state and key kept") {
		t.Errorf("the outage is not in the agent log")
	}
	h.Eventually("faults consumed and status polled again", func() bool {
		return len(h.Emu.Faults()) == 0
	})
	if code, out := h.Status(5); code != 0 {
		t.Errorf("--status after recovery: %d %s", code, out)
	}
}

// TestAgentCleanup: --cleanup after a stop leaves nothing attached,
// pinned or mounted that the agent owns.
func TestAgentCleanup(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	out, err := exec_(h.Bin, "--config", h.ConfigPath, "--prepare")
	if err != nil {
		t.Fatalf("--prepare: %v %s", err, out)
	}
	h.Start()
	if err := h.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A stopped agent leaves its programs pinned and attached.
	if progs := attachedPrograms(t, h.Cgroup); len(progs) != 5 {
		t.Errorf("after SIGTERM %d programs attached; want the 5 pinned ones", len(progs))
	}
	if out, err := exec_(h.Bin, "--config", h.ConfigPath, "--cleanup"); err != nil {
		t.Fatalf("--cleanup: %v %s", err, out)
	}
	if progs := attachedPrograms(t, h.Cgroup); len(progs) != 0 {
		t.Errorf("programs still attached to the test cgroup after --cleanup: %v", progs)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "bpffs", "msp-agent")); !os.IsNotExist(err) {
		t.Errorf("pin directory left behind: %v", err)
	}
	// Idempotent: a second cleanup with nothing left succeeds.
	if out, err := exec_(h.Bin, "--config", h.ConfigPath, "--cleanup"); err != nil {
		t.Errorf("second --cleanup: %v %s", err, out)
	}
}

// TestAgentKilledFailsClosed: SIGKILL in enforce mode leaves the pinned
// programs refusing connections to the enforced endpoint at once (no
// unsigned request reaches the host, no client hangs); audit endpoints
// stay reachable directly; a restarted agent adopts the pins and serves
// again.
func TestAgentKilledFailsClosed(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Apply(hostsim.Patch{Modes: &hostsim.ModesPatch{HostGAPlugin: agenttest.ModePtr(hostproto.ModeAudit), WireServer: agenttest.ModePtr(hostproto.ModeAudit)}})
	h.Start()
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("before the kill: %+v", r)
	}
	_ = h.Stop(syscall.SIGKILL)
	unsignedBefore := h.Count(func(r hostsim.Record) bool { return r.Endpoint == "imds" && !r.Signed })
	start := time.Now()
	r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance))
	took := time.Since(start)
	if r.Status != -1 || !strings.Contains(r.Body, "Failed to connect") {
		t.Errorf("IMDS (enforced) with the agent killed: %+v; want connect() refused (EPERM from the pinned programs)", r)
	}
	if took > 2*time.Second {
		t.Errorf("the refused connection took %v", took)
	}
	if n := h.Count(func(r hostsim.Record) bool { return r.Endpoint == "imds" && !r.Signed }); n != unsignedBefore {
		t.Errorf("%d unsigned IMDS requests reached the host with the agent killed", n-unsignedBefore)
	}
	// WireServer is in audit: fail open, straight to the host, unsigned.
	if r := h.Curl(0, "GET", h.URL(hostproto.WireServer, "/machine/?comp=goalstate")); r.Status != 200 {
		t.Errorf("WireServer (audit) with the agent killed: %+v; want it reached directly", r)
	}
	if rec := h.LastRecord(hostproto.WireServer, "/machine/?comp=goalstate"); rec == nil || rec.Signed {
		t.Errorf("WireServer record %+v; want an unsigned direct request", rec)
	}
	h.Start()
	if !strings.Contains(h.LogText(), `"pins":"adopted"`) {
		t.Errorf("the restarted agent did not adopt the pins:\n%s", h.LogText())
	}
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("after the restart: %+v", r)
	}
	if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Signed || !rec.Valid {
		t.Errorf("after the restart the host saw %+v", rec)
	}
}

// TestAgentRunsWithTheUnitsCapabilities runs the agent with exactly the
// capability bounding set of msp-agent.service and checks that it loads
// its programs, signs, and still resolves another user's executable (the
// reason the unit keeps CAP_SYS_PTRACE).
func TestAgentRunsWithTheUnitsCapabilities(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	var set []string
	for _, c := range unitfile.Capabilities() {
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	h.Wrap = []string{setpriv, "--bounding-set", "-all," + strings.Join(set, ","), "--"}
	h.Start()
	if r := h.Curl(65534, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("nobody's request under the unit's capabilities: %+v", r)
	}
	if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Signed || !rec.Valid {
		t.Errorf("host saw %+v", rec)
	}
	curl, _ := exec.LookPath("curl")
	curl, _ = filepath.EvalSymlinks(curl)
	h.Eventually("nobody's curl resolved in the audit log", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.Dir, "log", "audit.jsonl"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"uid":65534`) && strings.Contains(line, `"exe":"`+curl+`"`) {
				return true
			}
		}
		return false
	})
	// And the capabilities really were bounded.
	pid := h.PID()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if bnd&(1<<21) == 0 || bnd&(1<<1) != 0 { // CAP_SYS_ADMIN kept, CAP_DAC_OVERRIDE gone
				t.Errorf("CapBnd %x is not the unit's set", bnd)
			}
		}
	}
}

// TestAgentStartupFigures records (does not assert) start-to-ready with
// and without a cached key and the idle RSS, for the note.
func TestAgentStartupFigures(t *testing.T) {
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.3"})
	t0 := time.Now()
	h.Start()
	cold := time.Since(t0)
	time.Sleep(2 * time.Second)
	rss := vmRSS(t, h.PID())
	if err := h.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	h.Start()
	warm := time.Since(t0)
	t.Logf("start to ready: %v without a key (acquire and attest), %v with the cached key and adopted pins; idle RSS %d KiB", cold, warm, rss)
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
