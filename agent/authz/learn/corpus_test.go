package learn

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/audit"
)

var update = flag.Bool("update", false, "rewrite the committed corpus and golden files")

// corpusFiles are the rotated audit logs of one VM over a week, oldest
// first: days 1–3, days 4–5 (the training slice) and days 6–7 (held out).
var corpusFiles = []struct {
	name     string
	from, to int // days, [from, to)
}{
	{"audit.jsonl.2.gz", 0, 3},
	{"audit.jsonl.1.gz", 3, 5},
	{"audit.jsonl", 5, 7},
}

func corpusPath(name string) string { return filepath.Join("testdata", "audit", name) }

var corpusStart = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

var (
	waagent = audit.Caller{UID: 0, GID: 0, PID: 812, User: "root", Groups: []string{"root"},
		Exe: "/usr/bin/python3.11", Process: "python3.11", CmdLine: "python3 -u /usr/sbin/waagent -run-exthandlers", Root: true}
	backupd = audit.Caller{UID: 998, GID: 998, PID: 1403, User: "svc-backup", Groups: []string{"svc-backup"},
		Exe: "/opt/backup/bin/backupd", Process: "backupd", CmdLine: "/opt/backup/bin/backupd --config /etc/backupd.yaml"}
	webapp = audit.Caller{UID: 997, GID: 997, PID: 2210, User: "svc-web", Groups: []string{"svc-web", "www-data"},
		Exe: "/usr/bin/node", Process: "node", CmdLine: "node /srv/web/server.js"}
	mdsd = audit.Caller{UID: 996, GID: 996, PID: 977, User: "azuremonitor", Groups: []string{"azuremonitor"},
		Exe: "/opt/microsoft/azuremonitoragent/bin/mdsd", Process: "mdsd", CmdLine: "/opt/microsoft/azuremonitoragent/bin/mdsd -A -c /etc/opt/microsoft/azuremonitoragent/mdsd.xml"}
	telegraf = audit.Caller{UID: 995, GID: 995, PID: 1120, User: "telegraf", Groups: []string{"telegraf"},
		Exe: "/usr/bin/telegraf", Process: "telegraf", CmdLine: "/usr/bin/telegraf -config /etc/telegraf/telegraf.conf"}
	// alice's curl appears only in the held-out days: the unexpected caller.
	alice = audit.Caller{UID: 1000, GID: 1000, PID: 30511, User: "alice", Groups: []string{"alice", "sudo"},
		Exe: "/usr/bin/curl", Process: "curl", CmdLine: "curl -s -H Metadata:true http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"}
)

// generateCorpus writes one week of a VM's audit log, deterministically:
// IMDS in audit mode with an empty deny-default policy (every IMDS request
// is an audit-deny), WireServer and HostGAPlugin in audit mode with
// defaultAccess allow.
func generateCorpus(day0, day1 int) []audit.Entry {
	rng := rand.New(rand.NewPCG(uint64(day0)+1, 7))
	var out []audit.Entry
	seq := 0
	add := func(at time.Time, c audit.Caller, ep, method, target, decision, reason string, status int) {
		seq++
		out = append(out, audit.Entry{
			Time: at.Add(time.Duration(rng.IntN(900)) * time.Millisecond), ID: fmt.Sprintf("%08x-%04d", day0*1_000_000+seq, seq%10000),
			Endpoint: ep, Method: method, Target: target, Decision: decision, Reason: reason,
			Status: status, LatencyUs: int64(300 + rng.IntN(2700)), Signed: decision != audit.DecisionExempt && decision != audit.DecisionDeny,
			Caller: c,
		})
	}
	every := func(day time.Time, n int, f func(at time.Time, i int)) {
		step := 24 * time.Hour / time.Duration(n)
		for i := range n {
			f(day.Add(time.Duration(i)*step+time.Duration(rng.IntN(int(step/time.Second/2)))*time.Second), i)
		}
	}
	imds := func(at time.Time, c audit.Caller, target string) {
		add(at, c, "imds", "GET", target, audit.DecisionAuditDeny, "default-deny", 200)
	}
	wire := func(at time.Time, c audit.Caller, ep, method, target string) {
		add(at, c, ep, method, target, audit.DecisionAllow, "default-allow", 200)
	}
	for d := day0; d < day1; d++ {
		day := corpusStart.AddDate(0, 0, d)
		// The VM is redeployed daily in this corpus: a new container id.
		container := fmt.Sprintf("%08x-7d1e-4f0a-9c3b-%012x", 0x5e1f0000+d, 0xa11ce0000+d)
		role := container[:8] + "._vm-web-01"
		incarnation := d + 1
		every(day, 48, func(at time.Time, _ int) { wire(at, waagent, "wireserver", "GET", "/machine/?comp=goalstate") })
		every(day, 4, func(at time.Time, _ int) { wire(at, waagent, "wireserver", "GET", "/?comp=versions") })
		every(day, 4, func(at time.Time, _ int) {
			wire(at, waagent, "wireserver", "GET", fmt.Sprintf("/machine/%s/%s?comp=config&type=hostingEnvironmentConfig&incarnation=%d", container, role, incarnation))
		})
		every(day, 2, func(at time.Time, _ int) {
			wire(at, waagent, "wireserver", "GET", fmt.Sprintf("/machine/%s/%s?comp=certificates&incarnation=%d", container, role, incarnation))
		})
		every(day, 24, func(at time.Time, _ int) { wire(at, waagent, "wireserver", "POST", "/machine/?comp=health") })
		every(day, 24, func(at time.Time, _ int) {
			add(at, waagent, "wireserver", "POST", "/machine/?comp=telemetrydata", audit.DecisionExempt, "exempt", 200)
		})
		every(day, 48, func(at time.Time, _ int) { wire(at, waagent, "hostga", "GET", "/vmSettings") })
		every(day, 2, func(at time.Time, _ int) { wire(at, waagent, "hostga", "GET", "/extensionArtifact") })
		every(day, 1, func(at time.Time, _ int) {
			add(at, waagent, "hostga", "PUT", "/vmAgentLog", audit.DecisionExempt, "exempt", 200)
		})

		every(day, 12, func(at time.Time, _ int) {
			imds(at, backupd, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F")
		})
		webAPI := "2019-08-01"
		if d >= 5 {
			webAPI = "2021-12-13" // the web app's SDK was upgraded on day 6
		}
		every(day, 24, func(at time.Time, _ int) {
			imds(at, webapp, "/metadata/identity/oauth2/token?api-version="+webAPI+"&resource=https://vault.azure.net")
		})
		every(day, 2, func(at time.Time, _ int) {
			imds(at, webapp, "/metadata/instance/compute?api-version=2021-02-01&format=json")
		})
		every(day, 48, func(at time.Time, _ int) {
			imds(at, mdsd, "/metadata/instance?api-version=2021-02-01&format=json")
		})
		every(day, 96, func(at time.Time, _ int) {
			imds(at, telegraf, "/metadata/scheduledevents?api-version=2020-07-01")
		})
		every(day, 5, func(at time.Time, i int) {
			field := []string{"vmId", "location", "vmSize", "resourceGroupName", "subscriptionId"}[i]
			imds(at, telegraf, "/metadata/instance/compute/"+field+"?api-version=2021-02-01&format=text")
		})
		if d >= 5 {
			// The unexpected caller: a user's curl for a management token,
			// an instance read, a traversal attempt and a WireServer probe.
			at := day.Add(14*time.Hour + time.Duration(d)*time.Minute)
			imds(at, alice, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/")
			imds(at.Add(time.Minute), alice, "/metadata/instance?api-version=2021-02-01")
			add(at.Add(2*time.Minute), alice, "imds", "GET", "/metadata/instance/%2e%2e/identity/oauth2/token?resource=https://management.azure.com/", audit.DecisionDeny, "path-rejected", 403)
			add(at.Add(3*time.Minute), alice, "wireserver", "GET", "/machine/?comp=goalstate", audit.DecisionDeny, "root-required", 403)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

func encodeCorpus(t *testing.T, entries []audit.Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range entries {
		if err := enc.Encode(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// readMaybeGzip returns a file's content, decompressed when it is gzip.
func readMaybeGzip(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./agent/authz/learn -run Corpus -update)", err)
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// TestCorpusUpToDate keeps the committed corpus the output of the
// generator above (compared decompressed: gzip bytes may differ between
// Go versions).
func TestCorpusUpToDate(t *testing.T) {
	for _, f := range corpusFiles {
		want := encodeCorpus(t, generateCorpus(f.from, f.to))
		path := corpusPath(f.name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			data := want
			if strings.HasSuffix(f.name, ".gz") {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				_, _ = zw.Write(want)
				_ = zw.Close()
				data = b.Bytes()
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got := readMaybeGzip(t, path); !bytes.Equal(got, want) {
			t.Errorf("%s is not what the generator writes: run go test ./agent/authz/learn -run Corpus -update", path)
		}
	}
}

func corpusPaths(names ...string) []string {
	var out []string
	for _, f := range corpusFiles {
		if len(names) == 0 || contains(names, f.name) {
			out = append(out, corpusPath(f.name))
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
