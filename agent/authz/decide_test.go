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
		{name: "zero snapshot denies", snap: new(Snapshot), target: "/", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
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

// TestDecideConcurrent shares one snapshot between goroutines, as the
// proxy does; run with -race.
func TestDecideConcurrent(t *testing.T) {
	s := mustCompile(t, imdsPolicy)
	targets := []string{"/metadata/instance?api-version=2021-02-01", "/metadata/identity/oauth2/token%3Fresource=x", "/metadata/scheduledevents%3Fapi-version=2019-08-01", "/a/./b"}
	want := make([]Decision, len(targets))
	for i, target := range targets {
		want[i] = s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: target}, alice)
	}
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 500; i++ {
				k := (i + g) % len(targets)
				if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: targets[k]}, alice); d != want[k] {
					t.Errorf("goroutine %d: %q decided %+v; want %+v", g, targets[k], d, want[k])
					return
				}
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}
