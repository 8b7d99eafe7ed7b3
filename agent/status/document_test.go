package status

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/audit"
)

func running(msg string) Module { return Module{Status: Running, Message: msg} }

// TestShapeIsGPAs compares the document with the example of agent.md §9
// key by key: consumers of GPA's status read ours unchanged.
func TestShapeIsGPAs(t *testing.T) {
	pa := ProxyAgent{
		Version:       "1.0.48",
		MonitorStatus: running("monitor"),
		KeyLatchStatus: KeyLatch{Module: running("key latched"), States: States{
			SecureChannelState: "WireServer Enforce -  IMDS Enforce - HostGA Enforce",
			KeyGUID:            "e3882f98-da8d-4410-8394-06c23462781c",
			KeyIncarnationID:   "1",
		}},
		EBPFProgramStatus:     running("attached"),
		ProxyListenerStatus:   running("listening"),
		TelemetryLoggerStatus: running("n/a"),
		ProxyConnectionsCount: 590,
	}
	sums := audit.Summaries{ProxyConnectionSummary: []audit.Summary{{UserName: "root", UserGroups: []string{"root"},
		IP: "169.254.169.254", Port: 80, ProcessFullPath: "/usr/bin/curl", ResponseStatus: "200 OK", Count: 3}}}
	d := New(time.Date(2026, 7, 22, 10, 0, 0, 123456789, time.UTC), pa, sums)
	data, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got["timestamp"] != "2026-07-22T10:00:00.123" {
		t.Errorf("timestamp %v", got["timestamp"])
	}
	pas := got["proxyAgentStatus"].(map[string]any)
	if pas["status"] != Success {
		t.Errorf("overall %v; want SUCCESS with every module running", pas["status"])
	}
	for _, k := range []string{"version", "status", "monitorStatus", "keyLatchStatus", "ebpfProgramStatus",
		"proxyListenerStatus", "telemetryLoggerStatus", "proxyConnectionsCount"} {
		if _, ok := pas[k]; !ok {
			t.Errorf("proxyAgentStatus lacks %q", k)
		}
	}
	states := pas["keyLatchStatus"].(map[string]any)["states"].(map[string]any)
	for _, k := range []string{"secureChannelState", "keyGuid", "wireServerRuleId", "imdsRuleId", "hostGARuleId", "keyIncarnationId"} {
		if _, ok := states[k]; !ok {
			t.Errorf("states lacks %q", k)
		}
	}
	for _, k := range []string{"proxyConnectionSummary", "failedAuthenticateSummary"} {
		if _, ok := got[k].([]any); !ok {
			t.Errorf("%s is %T; want an array (never null)", k, got[k])
		}
	}
	conn := got["proxyConnectionSummary"].([]any)[0].(map[string]any)
	for _, k := range []string{"userName", "userGroups", "ip", "port", "processFullPath", "processCmdLine", "responseStatus", "count"} {
		if _, ok := conn[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
}

func TestOverall(t *testing.T) {
	stopped := Module{Status: Stopped, Message: "cgroup/connect4: not supported"}
	for _, tc := range []struct {
		k, e, l Module
		want    string
	}{
		{running(""), running(""), running(""), Success},
		{running(""), stopped, running(""), Error},
		{Module{Status: Unknown}, running(""), running(""), Error},
		{running(""), running(""), stopped, Error},
	} {
		if got := Overall(tc.k, tc.e, tc.l); got != tc.want {
			t.Errorf("Overall(%s, %s, %s) = %s; want %s", tc.k.Status, tc.e.Status, tc.l.Status, got, tc.want)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	d := New(time.Now(), ProxyAgent{Version: "1"}, audit.Summaries{})
	if err := d.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %o; want 0640", fi.Mode().Perm())
	}
	back, err := ReadFile(path)
	if err != nil || back.ProxyAgentStatus.Version != "1" || back.ProxyAgentStatus.Status != Error {
		t.Errorf("read back %+v, %v", back, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := d.WriteFile(filepath.Join(dir, "missing", FileName)); err == nil {
		t.Error("writing into a missing directory must fail")
	}
	if err := os.WriteFile(path, []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil {
		t.Error("a truncated document must not read")
	}
}
