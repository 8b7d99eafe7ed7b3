package authz

// One table test per invariant of authorization.md §8, named after it.

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

const ws = hostproto.WireServer

func TestI1EncodedSlash(t *testing.T) {
	imds := mustCompile(t, imdsPolicy)
	instanceOnly := mustCompile(t, `{"defaultAccess":"deny","rules":{
	  "privileges":[{"name":"instance","path":"/metadata/instance"}],
	  "roles":[{"name":"r","privileges":["instance"]}],
	  "identities":[{"name":"alice","userName":"alice"}],
	  "roleAssignments":[{"role":"r","identities":["alice"]}]}}`)
	wire := mustCompile(t, wirePolicy)
	runDecide(t, []decideCase{
		{name: "upper %2F under no privilege", snap: instanceOnly, target: "/metadata/identity/oauth2%2Ftoken", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "lower %2f under no privilege", snap: instanceOnly, target: "/metadata/identity/oauth2%2ftoken", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "%2F reaches the token privilege", snap: imds, target: "/metadata/identity/oauth2%2Ftoken", caller: alice, want: Deny, reason: ReasonIdentityMismatch, priv: "token"},
		{name: "%2F token for its identity", snap: imds, target: "/metadata/identity/oauth2%2Ftoken?resource=x", caller: rootCurl, want: Allow, reason: ReasonGranted, priv: "token"},
		{name: "machine%2F certificates", snap: wire, endpoint: ws, target: "/machine%2F?comp=certificates", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		{name: "machine%2F goalstate", snap: wire, endpoint: ws, target: "/machine%2F?comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "encoded letters", snap: instanceOnly, target: "/metadata/%69nstance", caller: bob, want: Deny, reason: ReasonIdentityMismatch, priv: "instance"},
	})
}

func TestI2DecodeOnce(t *testing.T) {
	// In the query a double encoding decodes once, to the literal text.
	var c Canonical
	if err := c.Parse("/metadata/identity/oauth2/token?resource=https%253A%252F%252Fvault"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Query(), [][2]string{{"resource", "https%3a%2f%2fvault"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("query = %q; want %q", got, want)
	}
	// In the path it is refused (I-24): a host that decodes twice would
	// read another path.
	imds := mustCompile(t, imdsPolicy)
	identity := mustCompile(t, identityPolicy)
	runDecide(t, []decideCase{
		{name: "%252F in the path", snap: imds, target: "/metadata/identity/oauth2%252Ftoken", caller: rootCurl, want: Deny, reason: ReasonPathRejected},
		{name: "%252F under the identity privilege", snap: identity, target: "/metadata/identity/oauth2%252Ftoken", caller: rootCurl, want: Deny, reason: ReasonPathRejected},
		{name: "%2525 in the path", snap: identity, target: "/metadata/identity/x%25252F", caller: alice, want: Deny, reason: ReasonPathRejected},
		{name: "double encoding in a query value", snap: identity, target: "/metadata/identity/oauth2/token?resource=https%253A%252F%252Fvault", caller: rootCurl, want: Allow, reason: ReasonGranted},
	})
}

func TestI3EncodedQuestionMark(t *testing.T) {
	imds := mustCompile(t, imdsPolicy)
	wire := mustCompile(t, wirePolicy)
	runDecide(t, []decideCase{
		{name: "scheduledevents %3F", snap: imds, target: "/metadata/scheduledevents%3Fapi-version=2019-08-01", caller: alice, want: Allow, reason: ReasonGranted, priv: "sched"},
		{name: "scheduledevents %3f lower", snap: imds, target: "/metadata/scheduledevents%3fapi-version=2019-08-01", caller: alice, want: Allow, reason: ReasonGranted},
		{name: "token %3F not granted", snap: imds, target: "/metadata/identity/oauth2/token%3Fapi-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", caller: alice, want: Deny, reason: ReasonIdentityMismatch, priv: "token"},
		{name: "token %3F granted", snap: imds, target: "/metadata/identity/oauth2/token%3Fapi-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", caller: rootCurl, want: Allow, reason: ReasonGranted, priv: "token"},
		{name: "raw // after %3F is still a raw path //", snap: imds, target: "/metadata/identity/oauth2/token%3Fresource=https://management.azure.com/", caller: rootCurl, want: Deny, reason: ReasonPathRejected},
		{name: "machine %3F certificates", snap: wire, endpoint: ws, target: "/machine/%3Fcomp=certificates", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		{name: "machine %3F goalstate", snap: wire, endpoint: ws, target: "/machine/%3Fcomp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "no double encoding in an embedded query", snap: wire, endpoint: ws, target: "/machine/%3Fcomp=goal%2573tate", caller: rootCurl, want: Deny, reason: ReasonPathRejected},
	})
	var c Canonical
	if err := c.Parse("/metadata/scheduledevents%3Fapi-version=2019-08-01"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Query(), [][2]string{{"api-version", "2019-08-01"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("embedded query = %q; want %q", got, want)
	}
}

func TestI4DotSegments(t *testing.T) {
	open := mustCompile(t, `{"defaultAccess":"allow"}`)
	audit := withMode(t, `{"defaultAccess":"allow"}`, "audit")
	disabled := withMode(t, `{"defaultAccess":"allow"}`, "disabled")
	var cases []decideCase
	for _, target := range []string{
		"/metadata/../identity", "/metadata/%2e%2e/identity", "/metadata/.%2E/identity", "/metadata/%2E./x",
		"/a..b", "/metadata/./identity/oauth2/token", "/metadata/identity/.", "/metadata/%2e/identity",
		"/metadata/.;x/identity", "/metadata/identity%3F..",
	} {
		for _, s := range []struct {
			mode string
			snap *Snapshot
		}{{"enforce", open}, {"audit", audit}, {"disabled", disabled}} {
			cases = append(cases, decideCase{name: s.mode + " " + target, snap: s.snap, target: target, caller: rootCurl, want: Deny, reason: ReasonPathRejected})
		}
	}
	cases = append(cases,
		decideCase{name: "well-known is a name", snap: open, target: "/.well-known/x", caller: alice, want: Allow, reason: ReasonDefaultAllow},
		decideCase{name: "dots inside a name", snap: open, target: "/a.b/c.d.e", caller: alice, want: Allow, reason: ReasonDefaultAllow},
	)
	runDecide(t, cases)
}

func TestI5DoubleSlashes(t *testing.T) {
	open := mustCompile(t, `{"defaultAccess":"allow"}`)
	audit := withMode(t, `{"defaultAccess":"allow"}`, "audit")
	var cases []decideCase
	for _, target := range []string{"//machine///?comp=certificates", "/metadata//instance", "/metadata/%2Fidentity", "/metadata%2F%2Fidentity", "/metadata/;x/identity"} {
		cases = append(cases,
			decideCase{name: "enforce " + target, snap: open, endpoint: ws, target: target, caller: rootCurl, want: Deny, reason: ReasonPathRejected},
			decideCase{name: "audit " + target, snap: audit, target: target, caller: rootCurl, want: Deny, reason: ReasonPathRejected})
	}
	cases = append(cases, decideCase{name: "slashes in the query are fine", snap: open, target: "/metadata/identity/oauth2/token?resource=https://vault.azure.net//", caller: alice, want: Allow, reason: ReasonDefaultAllow})
	runDecide(t, cases)
}

func TestI6SegmentBoundary(t *testing.T) {
	s := mustCompile(t, identityPolicy)
	runDecide(t, []decideCase{
		{name: "sibling with longer name", snap: s, target: "/metadata/identityX", caller: alice, want: Allow, reason: ReasonDefaultAllow},
		{name: "sibling with suffix", snap: s, target: "/metadata/identity-other/x", caller: alice, want: Allow, reason: ReasonDefaultAllow},
		{name: "exact", snap: s, target: "/metadata/identity", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "trailing slash", snap: s, target: "/metadata/identity/", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "below", snap: s, target: "/metadata/identity/oauth2/token", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "params removed", snap: s, target: "/metadata/identity;x/oauth2/token", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "encoded params removed", snap: s, target: "/metadata/identity%3Bx/oauth2/token", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "case", snap: s, target: "/METADATA/Identity/oauth2/token", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "granted", snap: s, target: "/metadata/identity/oauth2/token", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "parent not covered", snap: s, target: "/metadata", caller: alice, want: Allow, reason: ReasonDefaultAllow},
	})
	root := mustCompile(t, strings.Replace(identityPolicy, `"/metadata/identity"`, `"/"`, 1))
	runDecide(t, []decideCase{
		{name: "root privilege covers everything", snap: root, target: "/anything/at/all?x=1", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "root privilege covers /", snap: root, target: "/", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
	})
}

func TestI7ControlCharacters(t *testing.T) {
	open := mustCompile(t, `{"defaultAccess":"allow"}`)
	var cases []decideCase
	for _, target := range []string{"/metadata%00/x", "/metadata/instance%0a", "/a%0D%0AHost:%20x", "/a%7f", "/a%1F", "/metadata/x%3Fa=%00"} {
		cases = append(cases, decideCase{name: target, snap: open, target: target, caller: rootCurl, want: Deny, reason: ReasonPathRejected})
	}
	// A raw control byte is the raw-byte class of I-24 (the reader's 400).
	cases = append(cases, decideCase{name: "raw control byte", snap: open, target: "/a\x01b", caller: rootCurl, want: Deny, reason: ReasonBadRequestLine})
	runDecide(t, cases)
}

func TestI8CaseOfQueryValues(t *testing.T) {
	wire := mustCompile(t, wirePolicy)
	mixed := mustCompile(t, strings.Replace(wirePolicy, `{"comp": "goalstate"}`, `{"Comp": "GoalState"}`, 1))
	runDecide(t, []decideCase{
		{name: "upper value", snap: wire, endpoint: ws, target: "/machine/?comp=GOALSTATE", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "upper key", snap: wire, endpoint: ws, target: "/machine/?COMP=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "encoded value", snap: wire, endpoint: ws, target: "/machine/?comp=goal%53tate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "other value", snap: wire, endpoint: ws, target: "/machine/?comp=Certificates", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		{name: "mixed-case privilege", snap: mixed, endpoint: ws, target: "/machine/?comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "plus is not a space", snap: wire, endpoint: ws, target: "/machine/?comp=goal+state", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
	})
}

func TestI9DuplicateQueryKeys(t *testing.T) {
	wire := mustCompile(t, wirePolicy)
	both := mustCompile(t, `{"defaultAccess":"deny","rules":{
	  "privileges":[{"name":"goalstate","path":"/machine/","queryParameters":{"comp":"goalstate"}},{"name":"machine","path":"/machine"}],
	  "roles":[{"name":"a","privileges":["goalstate"]},{"name":"b","privileges":["machine"]}],
	  "identities":[{"name":"alice","userName":"alice"},{"name":"root","userName":"root"}],
	  "roleAssignments":[{"role":"a","identities":["alice"]},{"role":"b","identities":["root"]}]}}`)
	runDecide(t, []decideCase{
		{name: "differing values", snap: wire, endpoint: ws, target: "/machine/?comp=certificates&comp=goalstate", caller: rootCurl, want: Deny, reason: ReasonAmbiguousQuery, priv: "goalstate"},
		{name: "differing values reversed", snap: wire, endpoint: ws, target: "/machine/?comp=goalstate&comp=certificates", caller: rootCurl, want: Deny, reason: ReasonAmbiguousQuery},
		{name: "real and embedded differ", snap: wire, endpoint: ws, target: "/machine/%3Fcomp=certificates?comp=goalstate", caller: rootCurl, want: Deny, reason: ReasonAmbiguousQuery},
		{name: "identical repeats", snap: wire, endpoint: ws, target: "/machine/?comp=goalstate&comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "repeats equal after lower-casing", snap: wire, endpoint: ws, target: "/machine/?comp=goalstate&COMP=GoalState", caller: rootCurl, want: Allow, reason: ReasonGranted},
		{name: "another privilege may grant", snap: both, endpoint: ws, target: "/machine/?comp=certificates&comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted, priv: "machine"},
		{name: "ambiguous cannot grant its identity", snap: both, endpoint: ws, target: "/machine/?comp=certificates&comp=goalstate", caller: Caller{UID: 0, Root: true, UserName: "alice", ExePath: "/x", ProcessName: "x"}, want: Deny, reason: ReasonIdentityMismatch, priv: "machine"},
	})
}

func TestI10RequiredParameter(t *testing.T) {
	imds := mustCompile(t, imdsPolicy)
	runDecide(t, []decideCase{
		{name: "missing", snap: imds, target: "/metadata/instance", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "other keys only", snap: imds, target: "/metadata/instance?format=json", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "empty value", snap: imds, target: "/metadata/instance?api-version=", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "key without =", snap: imds, target: "/metadata/instance?api-version", caller: alice, want: Deny, reason: ReasonDefaultDeny},
		{name: "present with extras", snap: imds, target: "/metadata/instance/compute?format=json&api-version=2021-02-01", caller: alice, want: Allow, reason: ReasonGranted},
	})
}

func TestI11Homoglyphs(t *testing.T) {
	cyr := "r\u043e\u043et" // rооt with Cyrillic о
	policy := func(user string) *Snapshot {
		return mustCompile(t, `{"defaultAccess":"deny","rules":{
		  "privileges":[{"name":"p","path":"/"}],"roles":[{"name":"r","privileges":["p"]}],
		  "identities":[{"name":"i","userName":"`+user+`"}],"roleAssignments":[{"role":"r","identities":["i"]}]}}`)
	}
	cyrCaller := rootCurl
	cyrCaller.UserName = cyr
	runDecide(t, []decideCase{
		{name: "cyrillic rule, latin user", snap: policy(cyr), target: "/x", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch},
		{name: "latin rule, cyrillic user", snap: policy("root"), target: "/x", caller: cyrCaller, want: Deny, reason: ReasonIdentityMismatch},
		{name: "no case folding", snap: policy("Root"), target: "/x", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch},
		{name: "no trimming", snap: policy("root "), target: "/x", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch},
		{name: "fullwidth", snap: policy("\uff52oot"), target: "/x", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch},
		{name: "exact", snap: policy("root"), target: "/x", caller: rootCurl, want: Allow, reason: ReasonGranted},
	})
}

func TestI12SelectorConjunction(t *testing.T) {
	policy := func(identity string) *Snapshot {
		return mustCompile(t, `{"defaultAccess":"deny","rules":{
		  "privileges":[{"name":"p","path":"/metadata"}],"roles":[{"name":"r","privileges":["p"]}],
		  "identities":[{"name":"i",`+identity+`}],"roleAssignments":[{"role":"r","identities":["i"]}]}}`)
	}
	curl := policy(`"exePath":"/usr/bin/curl"`)
	group := policy(`"groupName":"metadata-readers"`)
	all := policy(`"userName":"alice","groupName":"users","exePath":"/usr/bin/curl","processName":"curl"`)
	noExe := alice
	noExe.ExePath, noExe.ProcessName = "", ""
	runDecide(t, []decideCase{
		{name: "exePath admits curl", snap: curl, target: "/metadata/instance", caller: alice, want: Allow, reason: ReasonGranted},
		{name: "exePath refuses python of the same user", snap: curl, target: "/metadata/instance", caller: alicePy, want: Deny, reason: ReasonIdentityMismatch},
		{name: "group member", snap: group, target: "/metadata/instance", caller: bob, want: Allow, reason: ReasonGranted},
		{name: "not a group member", snap: group, target: "/metadata/instance", caller: alice, want: Deny, reason: ReasonIdentityMismatch},
		{name: "all selectors match", snap: all, target: "/metadata/instance", caller: alice, want: Allow, reason: ReasonGranted},
		{name: "one selector fails", snap: all, target: "/metadata/instance", caller: alicePy, want: Deny, reason: ReasonIdentityMismatch},
		{name: "other user same exe", snap: all, target: "/metadata/instance", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch},
		{name: "unknown exe never matches", snap: curl, target: "/metadata/instance", caller: noExe, want: Deny, reason: ReasonIdentityMismatch},
	})
}

func TestI13RootOnlyWireServer(t *testing.T) {
	open := `{"defaultAccess":"allow"}`
	var cases []decideCase
	for _, mode := range []string{"enforce", "audit", "disabled"} {
		s := withMode(t, open, mode)
		for _, ep := range []hostproto.Endpoint{hostproto.WireServer, hostproto.HostGAPlugin} {
			for _, r := range []struct{ method, target string }{
				{"GET", "/machine/?comp=goalstate"}, {"PUT", "/vmagentlog"}, {"POST", "/machine/?comp=telemetrydata"},
			} {
				cases = append(cases, decideCase{name: mode + " " + ep.String() + " " + r.method + " " + r.target, snap: s, endpoint: ep, method: r.method, target: r.target, caller: alice, want: Deny, reason: ReasonRootRequired})
			}
		}
		imdsReason := ReasonDefaultAllow
		if mode == "disabled" {
			imdsReason = ReasonModeDisabled
		}
		cases = append(cases, decideCase{name: mode + " imds has no root requirement", snap: s, target: "/metadata/instance", caller: alice, want: Allow, reason: imdsReason})
	}
	denyAll := mustCompile(t, `{"defaultAccess":"deny"}`)
	cases = append(cases,
		decideCase{name: "root exempt PUT vmagentlog skips rules", snap: denyAll, endpoint: ws, method: "PUT", target: "/vmagentlog", caller: rootCurl, want: Allow, reason: ReasonExempt},
		decideCase{name: "root exempt telemetry, any case", snap: denyAll, endpoint: ws, method: "POST", target: "/Machine/?comp=TelemetryData", caller: rootCurl, want: Allow, reason: ReasonExempt},
		decideCase{name: "exempt needs the whole target", snap: denyAll, endpoint: ws, method: "POST", target: "/machine/?comp=telemetrydata&x=1", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		decideCase{name: "exempt needs the method", snap: denyAll, endpoint: ws, method: "GET", target: "/vmagentlog", caller: rootCurl, want: Deny, reason: ReasonDefaultDeny},
		decideCase{name: "root passes the root check", snap: mustCompile(t, open), endpoint: hostproto.HostGAPlugin, target: "/status", caller: rootCurl, want: Allow, reason: ReasonDefaultAllow},
	)
	runDecide(t, cases)
}

// mergeLocal merges a host item of the given mode with a local file, as
// the agent does: a file that fails to load makes the endpoint fail closed.
func mergeLocal(t *testing.T, hostMode, localDoc string) *Snapshot {
	t.Helper()
	host := hostproto.AuthorizationItem{DefaultAccess: "allow", Mode: hostMode, ID: "h"}
	local, err := rulefile.ParseLocal([]byte(localDoc))
	if err != nil {
		return Merge(Input{Host: &host, LocalErr: err})
	}
	return Merge(Input{Host: &host, Local: &local})
}

func TestI14MalformedJSONFailsClosed(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"not JSON", `defaultAccess: allow`},
		{"empty", ``},
		{"only whitespace", " \n\t"},
		{"truncated", `{"defaultAccess":"allow"`},
		{"trailing data", `{"defaultAccess":"allow"} {}`},
		{"trailing comma", `{"defaultAccess":"allow",}`},
		{"not UTF-8", "{\"defaultAccess\":\"allow\",\"id\":\"\xff\"}"},
		{"array", `[]`},
		{"validation", `{"defaultAccess":"maybe"}`},
		{"wrong type", `{"defaultAccess":true}`},
		{"unknown field", `{"defaultAccess":"allow","rulez":{}}`},
		{"too large", `{"id":"` + strings.Repeat("x", rulefile.MaxFileSize) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rulefile.ParseLocal([]byte(tc.doc)); err == nil {
				t.Fatal("rulefile.ParseLocal accepted it")
			}
			for _, mode := range []string{"enforce", "audit"} {
				s := mergeLocal(t, mode, tc.doc)
				want := map[string]Verdict{"enforce": Deny, "audit": Audit}[mode]
				d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance"}, rootCurl)
				if d.Verdict != want || d.Reason != ReasonLocalRulesFailed || !s.FailClosed() || s.Mode().String() != mode {
					t.Errorf("%s: %v/%s failClosed=%v mode=%v; want %v/%s, mode kept", mode, d.Verdict, d.Reason, s.FailClosed(), s.Mode(), want, ReasonLocalRulesFailed)
				}
			}
		})
	}
	t.Run("no host item", func(t *testing.T) {
		s := Merge(Input{LocalErr: errors.New("broken")})
		if s.Mode() != hostproto.ModeEnforce || !s.FailClosed() {
			t.Errorf("mode %v failClosed %v; want enforce, true", s.Mode(), s.FailClosed())
		}
	})
}

func TestI15BOM(t *testing.T) {
	doc := `{"defaultAccess":"deny","id":"local-v1","rules":{
	  "privileges":[{"name":"p","path":"/metadata/instance"}],"roles":[{"name":"r","privileges":["p"]}],
	  "identities":[{"name":"a","userName":"alice"}],"roleAssignments":[{"role":"r","identities":["a"]}]}}`
	for _, tc := range []struct {
		name string
		data string
		ok   bool
	}{
		{"plain", doc, true},
		{"bom", "\xef\xbb\xbf" + doc, true},
		{"bom and whitespace", "\xef\xbb\xbf \n" + doc, true},
		{"double bom", "\xef\xbb\xbf\xef\xbb\xbf" + doc, false},
		{"bom only", "\xef\xbb\xbf", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it, err := rulefile.ParseLocal([]byte(tc.data))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v; want ok %v", err, tc.ok)
			}
			if tc.ok && (it.ID != "local-v1" || len(it.Rules.Privileges) != 1) {
				t.Errorf("parsed %+v", it)
			}
		})
	}
}

func TestI16DuplicateJSONKeysFailClosed(t *testing.T) {
	for _, tc := range []struct{ name, doc, path string }{
		{"top level", `{"defaultAccess":"allow","defaultAccess":"deny"}`, "defaultAccess"},
		{"rules", `{"rules":{"privileges":[],"privileges":[]}}`, "rules.privileges"},
		{"privilege", `{"rules":{"privileges":[{"name":"a","path":"/a","path":"/b"}]}}`, "rules.privileges[0].path"},
		{"query parameters", `{"rules":{"privileges":[{"name":"a","path":"/a","queryParameters":{"comp":"x","comp":"y"}}]}}`, "rules.privileges[0].queryParameters.comp"},
		{"identity", `{"rules":{"identities":[{"name":"a","userName":"root","userName":"alice"}]}}`, "rules.identities[0].userName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rulefile.ParseLocal([]byte(tc.doc))
			var ve *rulefile.ValidationError
			if !errors.As(err, &ve) || ve.Problems[0].Path != tc.path || !strings.Contains(ve.Problems[0].Message, "duplicate key") {
				t.Fatalf("err = %v; want duplicate key at %s", err, tc.path)
			}
			s := mergeLocal(t, "enforce", tc.doc)
			if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/a"}, rootCurl); d.Verdict != Deny || d.Reason != ReasonLocalRulesFailed {
				t.Errorf("decision %v/%s; want deny/%s", d.Verdict, d.Reason, ReasonLocalRulesFailed)
			}
		})
	}
}

func TestI17DanglingReferences(t *testing.T) {
	rules := func(roles, assigns string) string {
		return `{"defaultAccess":"allow","rules":{
		  "privileges":[{"name":"p","path":"/metadata/instance"}],"roles":[` + roles + `],
		  "identities":[{"name":"a","userName":"alice"}],"roleAssignments":[` + assigns + `]}}`
	}
	for _, tc := range []struct{ name, doc, problem string }{
		{"role to missing privilege", rules(`{"name":"r","privileges":["p","x"]}`, `{"role":"r","identities":["a"]}`), `rules.roles[0].privileges[1]: no privilege named "x"`},
		{"assignment to missing role", rules(`{"name":"r","privileges":["p"]}`, `{"role":"nope","identities":["a"]}`), `rules.roleAssignments[0].role: no role named "nope"`},
		{"assignment to missing identity", rules(`{"name":"r","privileges":["p"]}`, `{"role":"r","identities":["b"]}`), `rules.roleAssignments[0].identities[0]: no identity named "b"`},
	} {
		t.Run("local "+tc.name, func(t *testing.T) {
			_, err := rulefile.ParseLocal([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("err = %v; want %q", err, tc.problem)
			}
			s := mergeLocal(t, "enforce", tc.doc)
			if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/other"}, alice); d.Verdict != Deny || d.Reason != ReasonLocalRulesFailed {
				t.Errorf("decision %v/%s; want deny/%s even with defaultAccess allow", d.Verdict, d.Reason, ReasonLocalRulesFailed)
			}
		})
	}
	t.Run("host payload skips and reports", func(t *testing.T) {
		host := hostproto.AuthorizationItem{DefaultAccess: "deny", Mode: "enforce", Rules: &hostproto.Rules{
			Privileges:      []hostproto.Privilege{{Name: "p", Path: "/metadata/instance"}},
			Roles:           []hostproto.Role{{Name: "r", Privileges: []string{"p", "x"}}},
			Identities:      []hostproto.Identity{{Name: "a", UserName: ptr("alice")}},
			RoleAssignments: []hostproto.RoleAssignment{{Role: "r", Identities: []string{"a", "b"}}, {Role: "nope", Identities: []string{"a"}}},
		}}
		s := Merge(Input{Host: &host})
		if len(s.Warnings()) != 3 {
			t.Errorf("warnings = %q; want 3", s.Warnings())
		}
		runDecide(t, []decideCase{
			{name: "valid part applies", snap: s, target: "/metadata/instance", caller: alice, want: Allow, reason: ReasonGranted, priv: "host_p"},
			{name: "others restricted", snap: s, target: "/metadata/instance", caller: bob, want: Deny, reason: ReasonIdentityMismatch},
		})
	})
}

func ptr(s string) *string { return &s }

func TestI18NoLocalMode(t *testing.T) {
	for _, tc := range []struct{ host, local string }{
		{"enforce", "disabled"}, {"enforce", "audit"}, {"audit", "disabled"}, {"audit", "enforce"}, {"disabled", "enforce"},
	} {
		t.Run(tc.host+" with local "+tc.local, func(t *testing.T) {
			s := mergeLocal(t, tc.host, `{"mode":"`+tc.local+`","defaultAccess":"deny"}`)
			if s.FailClosed() || s.Mode().String() != tc.host {
				t.Errorf("mode %v failClosed %v; want %s", s.Mode(), s.FailClosed(), tc.host)
			}
		})
	}
}

func TestI19PrefixIsolation(t *testing.T) {
	host := mustItem(t, `{"defaultAccess":"allow","mode":"enforce","id":"h","rules":{
	  "privileges":[{"name":"p","path":"/metadata/instance"}],"roles":[{"name":"r","privileges":["p"]}],
	  "identities":[{"name":"i","userName":"root"}],"roleAssignments":[{"role":"r","identities":["i"]}]}}`)
	local, err := rulefile.ParseLocal([]byte(`{"id":"l","rules":{
	  "privileges":[{"name":"p","path":"/metadata/identity"},{"name":"local_q","path":"/metadata/versions"}],
	  "roles":[{"name":"r","privileges":["p"]},{"name":"local_r","privileges":["local_q"]}],
	  "identities":[{"name":"i","userName":"alice"},{"name":"local_i","userName":"bob"}],
	  "roleAssignments":[{"role":"r","identities":["i"]},{"role":"local_r","identities":["local_i"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := Merge(Input{Host: &host, Local: &local})
	if len(s.Warnings()) != 0 || s.Privileges() != 3 {
		t.Fatalf("warnings %q, %d privileges; want none and 3", s.Warnings(), s.Privileges())
	}
	runDecide(t, []decideCase{
		{name: "host p stays root's", snap: s, target: "/metadata/instance", caller: alice, want: Deny, reason: ReasonIdentityMismatch, priv: "host_p"},
		{name: "host p granted", snap: s, target: "/metadata/instance", caller: rootCurl, want: Allow, reason: ReasonGranted, priv: "host_p"},
		{name: "local p is alice's", snap: s, target: "/metadata/identity", caller: alice, want: Allow, reason: ReasonGranted, priv: "local_p"},
		{name: "local p is not root's", snap: s, target: "/metadata/identity", caller: rootCurl, want: Deny, reason: ReasonIdentityMismatch, priv: "local_p"},
		{name: "already prefixed name binds", snap: s, target: "/metadata/versions", caller: bob, want: Allow, reason: ReasonGranted, priv: "local_local_q"},
	})
	d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/identity"}, alice)
	if d.Role != "local_r" || d.Identity != "local_i" {
		t.Errorf("role %q identity %q; want local_r, local_i", d.Role, d.Identity)
	}
	if s.ID() != "h-useLocalFileRules-false_l" {
		t.Errorf("id %q", s.ID())
	}
}

func TestI20UnknownModeFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want hostproto.Mode
	}{
		{"Enforcing", hostproto.ModeEnforce}, {"", hostproto.ModeEnforce}, {"disabled ", hostproto.ModeEnforce},
		{"off", hostproto.ModeEnforce}, {"AUDIT", hostproto.ModeAudit}, {"Disabled", hostproto.ModeDisabled}, {"enforce", hostproto.ModeEnforce},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := Merge(Input{Host: &hostproto.AuthorizationItem{DefaultAccess: "deny", Mode: tc.mode}})
			if s.Mode() != tc.want {
				t.Errorf("mode %v; want %v", s.Mode(), tc.want)
			}
			if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/"}, rootCurl); tc.want == hostproto.ModeEnforce && d.Verdict != Deny {
				t.Errorf("decision %v; want deny", d.Verdict)
			}
		})
	}
	t.Run("strict settings reject it", func(t *testing.T) {
		_, err := rulefile.ParseItem([]byte(`{"defaultAccess":"allow","mode":"enforcing"}`))
		if err == nil || !strings.Contains(err.Error(), `mode: "enforcing": want disabled, audit or enforce`) {
			t.Fatalf("err = %v", err)
		}
		s := Merge(Input{SettingsErr: err})
		if s.Mode() != hostproto.ModeEnforce || !s.FailClosed() {
			t.Errorf("mode %v failClosed %v; want enforce, true", s.Mode(), s.FailClosed())
		}
	})
}

func TestI21ContentChangesApply(t *testing.T) {
	base := mustItem(t, imdsPolicy)
	req := Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/versions"}
	changed := func(f func(*hostproto.AuthorizationItem)) hostproto.AuthorizationItem {
		it := mustItem(t, imdsPolicy)
		f(&it)
		return it
	}
	for _, tc := range []struct {
		name string
		item hostproto.AuthorizationItem
		want Verdict
	}{
		{"same", changed(func(*hostproto.AuthorizationItem) {}), Deny},
		{"mode", changed(func(it *hostproto.AuthorizationItem) { it.Mode = "audit" }), Audit},
		{"defaultAccess", changed(func(it *hostproto.AuthorizationItem) { it.DefaultAccess = "allow" }), Allow},
		{"rules", changed(func(it *hostproto.AuthorizationItem) {
			it.Rules.Privileges = append(it.Rules.Privileges, hostproto.Privilege{Name: "v", Path: "/metadata/versions"})
			it.Rules.Roles[0].Privileges = append(it.Rules.Roles[0].Privileges, "v")
		}), Allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, now := Merge(Input{Host: &base}), Merge(Input{Host: &tc.item})
			if tc.item.ID != base.ID {
				t.Fatal("id changed")
			}
			if d := now.Decide(req, alice); d.Verdict != tc.want {
				t.Errorf("decision %v; want %v", d.Verdict, tc.want)
			}
			if (old.Hash() == now.Hash()) != (tc.name == "same") {
				t.Errorf("hash equal = %v; want %v", old.Hash() == now.Hash(), tc.name == "same")
			}
		})
	}
}

// TestI22RawForwarding: matching reads the target and never rewrites it.
// The target shares its bytes with a buffer (unsafe.String), so a parser
// that lower-cases, decodes or trims in place would show in the buffer;
// and no field of the Decision carries the target or its canonical form.
func TestI22RawForwarding(t *testing.T) {
	s := mustCompile(t, imdsPolicy)
	for _, target := range []string{
		"/metadata/scheduledevents%3Fapi-version=2019-08-01",
		"/Metadata/Instance?API-Version=2021-02-01&format=JSON",
		"/metadata/identity;x/oauth2%2Ftoken?resource=https%3A%2F%2Fvault.azure.net",
		"/metadata/instance?Api-Version=2021-02-01&a=1&a=2",
	} {
		t.Run(target, func(t *testing.T) {
			buf := []byte(target)
			aliased := unsafe.String(&buf[0], len(buf))
			var c Canonical
			if err := c.Parse(aliased); err != nil {
				t.Fatal(err)
			}
			if string(buf) != target {
				t.Fatalf("Parse rewrote the target in place: %q", buf)
			}
			canonical := c.String()
			if canonical == target {
				t.Fatalf("canonical form equals the raw target; the test needs a target that canonicalises differently")
			}
			for _, caller := range []Caller{alice, {UID: 0, Root: true, UserName: "root", Groups: []string{"root"}, ExePath: "/usr/bin/curl", ProcessName: "curl"}} {
				d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: aliased}, caller)
				if string(buf) != target {
					t.Fatalf("Decide rewrote the target in place: %q", buf)
				}
				v := reflect.ValueOf(d)
				for i := 0; i < v.NumField(); i++ {
					if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" && (f.String() == target || f.String() == canonical || strings.Contains(f.String(), "/")) {
						t.Errorf("Decision.%s = %q carries a target", v.Type().Field(i).Name, f.String())
					}
				}
			}
			if err := CheckTarget(aliased); err != nil || string(buf) != target {
				t.Errorf("CheckTarget: %v, target now %q", err, buf)
			}
		})
	}
	if n := reflect.TypeOf(Decision{}).NumField(); n != 5 {
		t.Errorf("Decision has %d fields; a new one must not carry a rewritten target (extend this test)", n)
	}
}

func TestI23RoutingByOriginalDestination(t *testing.T) {
	imds := mustCompile(t, `{"defaultAccess":"allow"}`)
	wire := mustCompile(t, wirePolicy)
	runDecide(t, []decideCase{
		{name: "IMDS-looking path to WireServer needs root", snap: wire, endpoint: ws, target: "/metadata/instance?api-version=2021-02-01", caller: alice, want: Deny, reason: ReasonRootRequired},
		{name: "WireServer-looking path to IMDS uses IMDS rules", snap: imds, target: "/machine/?comp=certificates", caller: alice, want: Allow, reason: ReasonDefaultAllow},
		{name: "absolute form naming IMDS is rejected", snap: wire, endpoint: ws, target: "http://169.254.169.254/metadata/instance", caller: rootCurl, want: Deny, reason: ReasonBadRequestLine},
		{name: "HostGAPlugin uses the WireServer snapshot", snap: wire, endpoint: hostproto.HostGAPlugin, target: "/machine/?comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonGranted},
	})
	if _, ok := reflect.TypeOf(Request{}).FieldByName("Host"); ok {
		t.Error("Request has a Host field; routing must not depend on it")
	}
}

// TestExemptOnlyToRootOnlyEndpoints: the exempt shortcut skips the rules
// only where the request is really exempt (WireServer, HostGAPlugin); a
// root PUT /vmAgentLog to IMDS is authorized like any other request.
func TestExemptOnlyToRootOnlyEndpoints(t *testing.T) {
	deny := Compile(hostproto.AuthorizationItem{DefaultAccess: "deny", Mode: "enforce", ID: "deny-all"})
	root := Caller{UID: 0, Root: true, UserName: "root"}
	for _, tc := range []struct {
		ep   hostproto.Endpoint
		want Verdict
	}{
		{hostproto.WireServer, Allow},
		{hostproto.HostGAPlugin, Allow},
		{hostproto.IMDS, Deny},
	} {
		d := deny.Decide(Request{Endpoint: tc.ep, Method: "PUT", Target: "/vmAgentLog"}, root)
		if d.Verdict != tc.want {
			t.Errorf("%s: root PUT /vmAgentLog: %+v; want %s", tc.ep, d, tc.want)
		}
	}
}
