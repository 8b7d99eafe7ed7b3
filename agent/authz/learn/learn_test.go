package learn

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
)

func readCorpus(t *testing.T, names ...string) []Record {
	t.Helper()
	recs, warnings, err := ReadFiles(corpusPaths(names...)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings reading the corpus: %v", warnings)
	}
	return recs
}

func suggest(t *testing.T, recs []Record, opt Options) hostproto.AuthorizationItem {
	t.Helper()
	s, err := Suggest(recs, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s.Item
}

// TestSuggestionAdmitsItsOwnCorpus: nothing the agent forwarded while the
// corpus was recorded would be denied by the policy learnt from it.
func TestSuggestionAdmitsItsOwnCorpus(t *testing.T) {
	recs := readCorpus(t)
	for _, ep := range []hostproto.Endpoint{hostproto.IMDS, hostproto.WireServer} {
		for _, by := range []By{ByUser, ByGroup, ByExe, ByUserExe} {
			item := suggest(t, recs, Options{Endpoint: ep, By: by})
			imp := Replay(item, recs, ep)
			if imp.Breaks != 0 {
				t.Errorf("%s by %s: %d forwarded requests would be denied: %+v", ep, by, imp.Breaks, imp.Callers)
			}
			if imp.Replayed == 0 {
				t.Errorf("%s by %s: nothing replayed", ep, by)
			}
			// The recorded denies (a traversal, a non-root WireServer probe)
			// stay denied: learning never admits what the agent refused.
			for _, c := range imp.Callers {
				for _, ex := range c.Examples {
					if ex.Recorded != audit.DecisionDeny {
						t.Errorf("%s by %s: denied example %+v was forwarded when recorded", ep, by, ex)
					}
				}
			}
		}
	}
}

// TestHeldOutDaysDenyOnlyTheUnexpected: a policy learnt from days 1–5
// admits days 6–7 (a new container id, a new SDK api-version) except the
// user's curl that never appeared before.
func TestHeldOutDaysDenyOnlyTheUnexpected(t *testing.T) {
	train := readCorpus(t, "audit.jsonl.2.gz", "audit.jsonl.1.gz")
	heldOut := readCorpus(t, "audit.jsonl")
	for _, ep := range []hostproto.Endpoint{hostproto.IMDS, hostproto.WireServer} {
		item := suggest(t, train, Options{Endpoint: ep})
		imp := Replay(item, heldOut, ep)
		for _, c := range imp.Callers {
			if c.User != "alice" && c.Denied > 0 {
				t.Errorf("%s: expected caller %s (%s) denied %d times: %+v", ep, c.User, c.Exe, c.Denied, c.Examples)
			}
		}
		if ep == hostproto.IMDS && imp.Breaks != 4 {
			t.Errorf("imds: %d breaks; want alice's 2 forwarded requests on each of the 2 held-out days", imp.Breaks)
		}
		if ep == hostproto.WireServer && imp.Breaks != 0 {
			t.Errorf("wireserver: %d breaks; want 0 (alice's probe was already refused)", imp.Breaks)
		}
	}
}

func TestSuggestionDeniesStrangers(t *testing.T) {
	item := suggest(t, readCorpus(t), Options{Endpoint: hostproto.IMDS})
	item.Mode = "enforce"
	snap := authz.Compile(item)
	for _, tc := range []struct {
		name   string
		target string
		caller authz.Caller
		allow  bool
	}{
		{"backupd's own token", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com/",
			authz.Caller{UID: 998, UserName: "svc-backup", Groups: []string{"svc-backup"}, ExePath: "/opt/backup/bin/backupd"}, true},
		{"backupd asks for another resource", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
			authz.Caller{UID: 998, UserName: "svc-backup", Groups: []string{"svc-backup"}, ExePath: "/opt/backup/bin/backupd"}, false},
		{"svc-backup's uid through python", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com/",
			authz.Caller{UID: 998, UserName: "svc-backup", Groups: []string{"svc-backup"}, ExePath: "/usr/bin/python3.11"}, false},
		{"a token for an identity never seen", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com/",
			authz.Caller{UID: 1001, UserName: "bob", Groups: []string{"bob"}, ExePath: "/usr/bin/curl"}, false},
		{"root is no exception", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
			authz.Caller{UID: 0, UserName: "root", Groups: []string{"root"}, ExePath: "/usr/bin/curl", Root: true}, false},
		{"telegraf's generalised compute fields", "/metadata/instance/compute/zone?api-version=2021-02-01&format=text",
			authz.Caller{UID: 995, UserName: "telegraf", Groups: []string{"telegraf"}, ExePath: "/usr/bin/telegraf"}, true},
		{"telegraf has no network access", "/metadata/instance/network?api-version=2021-02-01",
			authz.Caller{UID: 995, UserName: "telegraf", Groups: []string{"telegraf"}, ExePath: "/usr/bin/telegraf"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := snap.Decide(authz.Request{Endpoint: hostproto.IMDS, Method: "GET", Target: tc.target}, tc.caller)
			if d.Forward() != tc.allow {
				t.Errorf("decision %+v; want allow=%v", d, tc.allow)
			}
		})
	}
}

// TestSuggestedPolicyGolden pins the policy learnt from the whole corpus;
// the closing note of issue 14 shows it.
func TestSuggestedPolicyGolden(t *testing.T) {
	recs := readCorpus(t)
	for _, ep := range []hostproto.Endpoint{hostproto.IMDS, hostproto.WireServer} {
		s, err := Suggest(recs, Options{Endpoint: ep, Mode: "enforce"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.MarshalIndent(s.Item, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("testdata", "suggested-"+ep.String()+".json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s changed (run with -update if intended):\n%s", path, got)
		}
	}
}

func TestGeneralisation(t *testing.T) {
	recs := readCorpus(t)
	wire := suggest(t, recs, Options{Endpoint: hostproto.WireServer})
	paths := map[string]map[string]string{}
	for _, p := range wire.Rules.Privileges {
		paths[p.Path] = p.QueryParameters
	}
	// Seven container ids under /machine: one prefix privilege, not seven.
	if _, ok := paths["/machine"]; !ok {
		t.Errorf("wireserver privileges %v; want /machine generalised", paths)
	}
	for p := range paths {
		if strings.HasPrefix(p, "/machine/") {
			t.Errorf("privilege %s survived the generalisation to /machine", p)
		}
	}
	imds := suggest(t, recs, Options{Endpoint: hostproto.IMDS})
	var sawCompute, sawToken bool
	for _, p := range imds.Rules.Privileges {
		switch {
		case p.Path == "/metadata/instance/compute" && p.QueryParameters["format"] == "text":
			sawCompute = true
		case strings.HasPrefix(p.Path, "/metadata/instance/compute/"):
			t.Errorf("privilege %s: five fields under compute must make one prefix", p.Path)
		case p.Path == "/metadata/identity/oauth2/token" && p.QueryParameters["resource"] == "https://storage.azure.com/":
			sawToken = true
			if _, ok := p.QueryParameters["api-version"]; ok {
				t.Errorf("privilege %s pins api-version", p.Name)
			}
		}
	}
	if !sawCompute || !sawToken {
		t.Errorf("compute prefix %v, storage token constraint %v: %+v", sawCompute, sawToken, imds.Rules.Privileges)
	}
	// Under defaultAccess allow a constraint would only weaken the policy.
	allow := suggest(t, recs, Options{Endpoint: hostproto.IMDS, DefaultAccess: "allow"})
	for _, p := range allow.Rules.Privileges {
		if len(p.QueryParameters) > 0 {
			t.Errorf("defaultAccess allow: privilege %s has constraints %v", p.Name, p.QueryParameters)
		}
	}
}

// TestNeverEmptySelectorOrRootPrivilege runs Suggest over odd callers and
// paths: no identity ever gets an empty selector, no privilege is / or
// /metadata without a query constraint (which would grant everything
// below it), and every output validates (Suggest checks that).
func TestNeverEmptySelectorOrRootPrivilege(t *testing.T) {
	callers := []audit.Caller{
		{UID: 5000},                                 // no name, no exe
		{UID: 5001, User: "u1"},                     // no exe
		{UID: 5002, Exe: "/bin/x"},                  // no user
		{UID: 5003, User: "u3", Groups: []string{}}, // no groups
		{UID: 5004, User: "u4", Groups: []string{"g4"}, Exe: "/opt/a b/c"},
	}
	targets := []string{"/", "/metadata", "/metadata/", "/a", "/metadata/x;p=1/y", "/metadata/%41b/c",
		"/metadata/instance?api-version=1", "/metadata/instance/%3Fx", "/metadata/a/b?k=v&k=w"}
	var recs []Record
	at := time.Unix(1_800_000_000, 0)
	for i, c := range callers {
		for j, tg := range targets {
			recs = append(recs, Record{Entry: audit.Entry{Time: at.Add(time.Duration(i*len(targets)+j) * time.Second),
				Endpoint: "imds", Method: "GET", Target: tg, Decision: audit.DecisionAuditDeny, Caller: c}})
		}
	}
	for _, by := range []By{ByUser, ByGroup, ByExe, ByUserExe} {
		for _, def := range []string{"deny", "allow"} {
			s, err := Suggest(recs, Options{Endpoint: hostproto.IMDS, By: by, DefaultAccess: def, ManyChildren: 2})
			if err != nil {
				t.Fatalf("by %s: %v", by, err)
			}
			if s.Item.Rules == nil {
				continue
			}
			for _, id := range s.Item.Rules.Identities {
				for _, sel := range []*string{id.UserName, id.GroupName, id.ExePath, id.ProcessName} {
					if sel != nil && *sel == "" {
						t.Errorf("by %s: identity %s has an empty selector", by, id.Name)
					}
				}
			}
			for _, p := range s.Item.Rules.Privileges {
				if p.Path == "" || (p.Path == "/" || p.Path == "/metadata") && len(p.QueryParameters) == 0 {
					t.Errorf("by %s: privilege %s has path %q without a query constraint", by, p.Name, p.Path)
				}
			}
		}
	}
}

func TestReadFilesSkipsBadLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "audit.jsonl")
	good := `{"time":"2026-11-23T00:00:00Z","endpoint":"imds","method":"GET","target":"/metadata/instance","decision":"allow","caller":{"uid":1}}`
	data := good + "\n\nnot json\n{\"endpoint\":\"imds\"}\n" + good[:40]
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, warnings, err := ReadFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Source != p+":1" {
		t.Errorf("records %+v; want the one good line", recs)
	}
	if len(warnings) != 3 || !strings.Contains(warnings[0], p+":3") {
		t.Errorf("warnings %q; want lines 3, 4 and 5 named", warnings)
	}
	if _, _, err := ReadFiles(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file must be an error")
	}
}
