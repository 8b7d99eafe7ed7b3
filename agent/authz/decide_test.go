package authz

import (
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

func TestDecidePrecedence(t *testing.T) {
	const doc = `{"defaultAccess":"allow","rules":{
	  "privileges":[
	    {"name":"mi","path":"/metadata/identity"},
	    {"name":"token","path":"/metadata/identity/oauth2/token","queryParameters":{"resource":"https://vault.azure.net"}},
	    {"name":"nobody","path":"/metadata/loadbalancer"}],
	  "roles":[{"name":"mi","privileges":["mi"]},{"name":"vault","privileges":["token"]}],
	  "identities":[{"name":"root","userName":"root"},{"name":"vaultapp","exePath":"/usr/bin/python3.11"}],
	  "roleAssignments":[{"role":"mi","identities":["root"]},{"role":"vault","identities":["vaultapp"]}]}}`
	s := mustCompile(t, doc)
	runDecide(t, []decideCase{
		{name: "matched and identity matched", snap: s, target: "/metadata/identity/info", caller: rootCurl, want: Allow, reason: ReasonGranted, priv: "mi"},
		{name: "matched, identity not", snap: s, target: "/metadata/identity/info", caller: alice, want: Deny, reason: ReasonIdentityMismatch, priv: "mi"},
		{name: "deeper privilege grants", snap: s, target: "/metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net", caller: alicePy, want: Allow, reason: ReasonGranted, priv: "token"},
		{name: "deeper privilege's query unmet", snap: s, target: "/metadata/identity/oauth2/token?resource=https%3A%2F%2Fstorage.azure.com", caller: alicePy, want: Deny, reason: ReasonIdentityMismatch, priv: "mi"},
		{name: "privilege without assignments restricts", snap: s, target: "/metadata/loadbalancer", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch, priv: "nobody"},
		{name: "no privilege: default allow", snap: s, target: "/metadata/instance", caller: alice, want: Allow, reason: ReasonDefaultAllow},
	})
	audit := withMode(t, doc, "audit")
	disabled := withMode(t, doc, "disabled")
	runDecide(t, []decideCase{
		{name: "audit turns a deny into audit", snap: audit, target: "/metadata/identity/info", caller: alice, want: Audit, reason: ReasonIdentityMismatch},
		{name: "audit allows as enforce", snap: audit, target: "/metadata/identity/info", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "disabled allows", snap: disabled, target: "/metadata/identity/info", caller: alice, want: Allow, reason: ReasonModeDisabled},
		{name: "nil snapshot denies", snap: nil, target: "/", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		{name: "unrestricted", snap: Unrestricted(hostproto.ModeEnforce), endpoint: ws, target: "/machine?comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonDefaultAllow},
		{name: "unrestricted keeps root check", snap: Unrestricted(hostproto.ModeEnforce), endpoint: ws, target: "/machine?comp=goalstate", caller: alice, want: Deny, reason: ReasonRootRequired},
	})
}

func TestDecideDecisionNames(t *testing.T) {
	s := mustCompile(t, imdsPolicy)
	d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance?api-version=2021-02-01"}, alice)
	want := Decision{Verdict: Allow, Reason: ReasonGranted, Privilege: "instance", Role: "reader", Identity: "alice"}
	if d != want {
		t.Errorf("Decide = %+v; want %+v", d, want)
	}
	if !d.Forward() || (Decision{Verdict: Audit}).Forward() != true || (Decision{}).Forward() {
		t.Error("Forward wrong")
	}
}

func TestExempt(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"PUT", "/vmagentlog", true},
		{"PUT", "/VMAgentLog", true},
		{"POST", "/machine/?comp=telemetrydata", true},
		{"POST", "/MACHINE/?COMP=TELEMETRYDATA", true},
		{"put", "/vmagentlog", false},
		{"POST", "/vmagentlog", false},
		{"PUT", "/vmagentlog/", false},
		{"POST", "/machine?comp=telemetrydata", false},
		{"POST", "/machine/?comp=telemetrydata&x", false},
		{"POST", "/machine/%3Fcomp=telemetrydata", false},
	} {
		if got := Exempt(tc.method, tc.target); got != tc.want {
			t.Errorf("Exempt(%s, %q) = %v; want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	item := func(mode, access string) *hostproto.AuthorizationItem {
		return &hostproto.AuthorizationItem{Mode: mode, DefaultAccess: access}
	}
	for _, tc := range []struct {
		name       string
		in         Input
		mode       hostproto.Mode
		allow      bool
		failClosed bool
	}{
		{"nothing", Input{}, hostproto.ModeDisabled, false, false},
		{"host only", Input{Host: item("audit", "allow")}, hostproto.ModeAudit, true, false},
		{"settings stricter mode", Input{Host: item("audit", "allow"), Settings: item("enforce", "allow")}, hostproto.ModeEnforce, true, false},
		{"host stricter mode", Input{Host: item("enforce", "allow"), Settings: item("disabled", "allow")}, hostproto.ModeEnforce, true, false},
		{"settings deny wins", Input{Host: item("enforce", "allow"), Settings: item("enforce", "deny")}, hostproto.ModeEnforce, false, false},
		{"host deny wins over local allow", Input{Host: item("enforce", "deny"), Local: &hostproto.AuthorizationItem{DefaultAccess: "allow"}}, hostproto.ModeEnforce, false, false},
		{"local deny wins", Input{Host: item("enforce", "allow"), Local: &hostproto.AuthorizationItem{DefaultAccess: "deny"}}, hostproto.ModeEnforce, false, false},
		{"local without defaultAccess", Input{Host: item("enforce", "allow"), Local: &hostproto.AuthorizationItem{}}, hostproto.ModeEnforce, true, false},
		{"host odd defaultAccess", Input{Host: item("enforce", "Allow ")}, hostproto.ModeEnforce, false, false},
		{"settings failed", Input{Host: item("audit", "allow"), SettingsErr: errFake}, hostproto.ModeAudit, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Merge(tc.in)
			if s.Mode() != tc.mode || s.DefaultAllow() != tc.allow || s.FailClosed() != tc.failClosed {
				t.Errorf("mode %v allow %v failClosed %v; want %v %v %v", s.Mode(), s.DefaultAllow(), s.FailClosed(), tc.mode, tc.allow, tc.failClosed)
			}
		})
	}
}

var errFake = &ValidationError{Problems: []Problem{{Path: "$", Message: "broken"}}}

func TestMergeUnionAndCompleteness(t *testing.T) {
	host := &hostproto.AuthorizationItem{Mode: "enforce", DefaultAccess: "allow", Rules: &hostproto.Rules{
		Privileges: []hostproto.Privilege{{Name: "mi", Path: "/metadata/identity"}},
	}}
	settings := mustItem(t, `{"defaultAccess":"allow","rules":{"privileges":[],"roles":[],
	  "identities":[{"name":"a","userName":"alice"}],"roleAssignments":[]}}`)
	s := Merge(Input{Host: host, Settings: &settings})
	// The host's privilege exists (arrays are complete after merging) and
	// restricts, though nobody is granted it.
	if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/identity"}, alice); d.Verdict != Deny || d.Privilege != "host_mi" {
		t.Errorf("decision %+v; want deny by host_mi", d)
	}
	alone := Merge(Input{Host: host})
	if alone.Privileges() != 0 || len(alone.Warnings()) != 1 {
		t.Errorf("incomplete host: %d privileges, warnings %q; want 0 and one warning", alone.Privileges(), alone.Warnings())
	}
}

func TestCompileHostDefects(t *testing.T) {
	host := hostproto.AuthorizationItem{Mode: "bogus", DefaultAccess: "perhaps", Rules: &hostproto.Rules{
		Privileges: []hostproto.Privilege{
			{Name: "p", Path: "/old"}, {Name: "p", Path: "metadata/instance"}, {Name: "q", Path: "", QueryParameters: map[string]string{"": "x"}},
		},
		Roles:           []hostproto.Role{{Name: "r", Privileges: []string{"p"}}},
		Identities:      []hostproto.Identity{{Name: "any"}, {Name: "empty", UserName: ptr("")}},
		RoleAssignments: []hostproto.RoleAssignment{{Role: "r", Identities: []string{"any", "empty"}}},
	}}
	s := Compile(host)
	if s.Mode() != hostproto.ModeEnforce || s.DefaultAllow() {
		t.Errorf("mode %v allow %v; want enforce, deny", s.Mode(), s.DefaultAllow())
	}
	if len(s.Warnings()) != 8 {
		t.Errorf("warnings:\n%s", joinLines(s.Warnings()))
	}
	runDecide(t, []decideCase{
		{name: "last duplicate wins, slash added", snap: s, target: "/metadata/instance", caller: bob, want: Allow, reason: ReasonGranted, priv: "p"},
		{name: "first duplicate gone", snap: s, target: "/old", caller: bob, want: Deny, reason: ReasonDefaultDeny},
	})
}

func joinLines(s []string) string {
	out := ""
	for _, l := range s {
		out += l + "\n"
	}
	return out
}
