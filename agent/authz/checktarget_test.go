package authz

// Tests of the strict reading of the request-target (authorization.md
// I-24; CheckTarget), one per class, and of "root means root" (issue 15
// item 5).

import (
	"errors"
	"os"
	"testing"

	"github.com/mspguest/msp/agent/authz/targettest"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// checkRefused asserts that CheckTarget refuses target with status and
// reason, and that Decide denies it with the same reason in every mode.
func checkRefused(t *testing.T, target string, status int, reason Reason) {
	t.Helper()
	var te *TargetError
	err := CheckTarget(target)
	if !errors.As(err, &te) || te.Status != status || te.Reason != reason {
		t.Fatalf("CheckTarget(%q) = %v; want %d %s", target, err, status, reason)
	}
	if errors.Is(err, ErrPathRejected) != (reason == ReasonPathRejected) {
		t.Errorf("CheckTarget(%q): errors.Is(ErrPathRejected) = %v", target, errors.Is(err, ErrPathRejected))
	}
	for _, mode := range []string{"enforce", "audit", "disabled"} {
		s := withMode(t, `{"defaultAccess":"allow"}`, mode)
		if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: target}, rootCurl); d.Verdict != Deny || d.Reason != reason {
			t.Errorf("%s: Decide(%q) = %v/%s; want deny/%s", mode, target, d.Verdict, d.Reason, reason)
		}
	}
}

func checkAccepted(t *testing.T, target string) {
	t.Helper()
	if err := CheckTarget(target); err != nil {
		t.Errorf("CheckTarget(%q) = %v; want nil", target, err)
	}
	s := mustCompile(t, `{"defaultAccess":"allow"}`)
	if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: target}, alice); d.Verdict != Allow {
		t.Errorf("Decide(%q) = %v/%s; want allow", target, d.Verdict, d.Reason)
	}
}

func TestI24RawByteClass(t *testing.T) {
	// Every byte outside RFC 3986 path and query characters, in the path
	// and in the query, is the reader's 400.
	for b := 0; b < 256; b++ {
		if rawhttp.TargetChar(byte(b)) {
			continue
		}
		checkRefused(t, "/metadata/identity"+string([]byte{byte(b)})+"/x", 400, ReasonBadRequestLine)
		checkRefused(t, "/x?k="+string([]byte{byte(b)}), 400, ReasonBadRequestLine)
	}
	for _, c := range "\\ #\"<>{}|^`[]\x00\x1f\x7f" {
		if rawhttp.TargetChar(byte(c)) {
			t.Errorf("byte %q is a target character", c)
		}
	}
	for _, c := range "azAZ09-._~!$&'()*+,;=:@/?%" {
		if !rawhttp.TargetChar(byte(c)) {
			t.Errorf("byte %q is not a target character", c)
		}
	}
	checkRefused(t, "metadata/identity", 400, ReasonBadRequestLine)
	checkRefused(t, "", 400, ReasonBadRequestLine)
}

func TestI24MalformedEscape(t *testing.T) {
	for _, target := range []string{
		"/metadata/%u0069dentity", "/metadata/%U0069dentity", "/a%", "/a%2", "/a%zz", "/a%2g", "/a%g2",
		"/a?x=%", "/a?x=%u0041", "/a?%zz=1", "/a%3Fx=%", // %3F: the embedded query is still the path
	} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	checkAccepted(t, "/a%2F?x=%41%7e")
}

func TestI24DecodedHighByte(t *testing.T) {
	for _, target := range []string{
		"/metadata%c0%afidentity", "/metadata%e0%80%afidentity", "/metadata%ef%bc%8fidentity", "/caf%C3%A9", "/a%80", "/a%FF",
		"/a?x=%80", "/a?%c3%a9=1", "/a?resource=%ef%bd%81",
	} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	checkAccepted(t, "/a%7E?x=%7f")
}

func TestI24DecodedBackslash(t *testing.T) {
	for _, target := range []string{"/metadata%5Cidentity", "/metadata%5cidentity", "/a%3Fx=%5C"} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	checkAccepted(t, "/a?path=c%3A%5Cwindows") // a query value may hold one
}

func TestI24DoubleEncoding(t *testing.T) {
	for _, target := range []string{"/a%25", "/a%252F", "/a%2525", "/metadata/instance/%252e%252e/identity", "/a%3Fx=%2541"} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	checkAccepted(t, "/a?x=%25&y=%252F") // in the query it decodes once
}

func TestI24TrailingDotOrSpace(t *testing.T) {
	for _, target := range []string{
		"/metadata/identity./x", "/metadata/identity%2e/x", "/metadata/identity%20/x", "/a.", "/a%20",
		"/a%20/", "/a.%3Fx=1", "/a./?x=1", "/a.;p/b", "/a;p./b", "/a%20;p",
	} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	for _, target := range []string{"/.well-known/openid-configuration", "/a.b/c", "/a%20b", "/.a", "/a/", "/a;p/b", "/a?x=1.", "/a?x=1%20", "/a%3Fx=1."} {
		checkAccepted(t, target)
	}
}

func TestI24QueryRules(t *testing.T) {
	// Only the % and >= 0x80 rules apply to the query; its other
	// characters are data.
	for _, target := range []string{"/a?x=%u0041", "/a?x=%4", "/a?x=%c0%af", "/a?%c0%af=1"} {
		checkRefused(t, target, 403, ReasonPathRejected)
	}
	for _, target := range []string{"/a?x=%00", "/a?x=%5C", "/a?x=%25", "/a?x=.", "/a?x=%20", "/a?x=a/b/../c", "/a?x=?&y=//"} {
		checkAccepted(t, target)
	}
}

// loadExample compiles a shipped example policy.
func loadExample(t *testing.T, name string) *Snapshot {
	t.Helper()
	data, err := os.ReadFile("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustCompile(t, string(data))
}

// TestI24Spellings runs every spelling of targettest against the shipped
// policy that keeps /metadata/identity from alice, and against a
// deny-default policy that grants alice only /metadata/instance: each is
// refused by the strict reading or denied by the matcher (issue 15).
func TestI24Spellings(t *testing.T) {
	mi := loadExample(t, "imds-managed-identity.json")
	instanceOnly := mustCompile(t, `{"defaultAccess":"deny","rules":{
	  "privileges":[{"name":"instance","path":"/metadata/instance"}],
	  "roles":[{"name":"r","privileges":["instance"]}],
	  "identities":[{"name":"alice","userName":"alice"}],
	  "roleAssignments":[{"role":"r","identities":["alice"]}]}}`)
	spellings := targettest.Spellings()
	if len(spellings) < 50 {
		t.Fatalf("%d spellings; issue 15 asks for at least 50", len(spellings))
	}
	for _, sp := range spellings {
		t.Run(sp.Note, func(t *testing.T) {
			req := Request{Endpoint: hostproto.IMDS, Method: "GET", Target: sp.Target}
			if sp.Refused {
				status, reason := 403, ReasonPathRejected
				if sp.Raw {
					status, reason = 400, ReasonBadRequestLine
				}
				checkRefused(t, sp.Target, status, reason)
				if got := rawhttp.CheckTarget(sp.Target) != nil; got != sp.Raw {
					t.Errorf("rawhttp.CheckTarget refuses it: %v; want %v", got, sp.Raw)
				}
				return
			}
			if err := CheckTarget(sp.Target); err != nil {
				t.Fatalf("CheckTarget: %v", err)
			}
			if d := mi.Decide(req, alice); d.Verdict != Deny || d.Reason != ReasonIdentityMismatch || d.Privilege != "managedIdentity" {
				t.Errorf("managed-identity example: %v/%s (%q); want deny by managedIdentity", d.Verdict, d.Reason, d.Privilege)
			}
			if d := instanceOnly.Decide(req, alice); d.Verdict != Deny || d.Reason != ReasonDefaultDeny {
				t.Errorf("instance-only policy: %v/%s; want deny/default-deny", d.Verdict, d.Reason)
			}
		})
	}
}

// TestI24Legitimate checks that the targets of real clients pass the
// strict reading and reach the rules.
func TestI24Legitimate(t *testing.T) {
	open := mustCompile(t, `{"defaultAccess":"allow"}`)
	for _, l := range targettest.Legitimates() {
		t.Run(l.Source+" "+l.Target, func(t *testing.T) {
			if err := CheckTarget(l.Target); err != nil {
				t.Fatalf("CheckTarget: %v", err)
			}
			if d := open.Decide(Request{Endpoint: l.Endpoint, Method: l.Method, Target: l.Target}, rootCurl); d.Verdict != Allow {
				t.Errorf("Decide = %v/%s; want allow", d.Verdict, d.Reason)
			}
		})
	}
}

// TestWindowsPathReadsTheAttacks shows that the Windows-like reading of
// the fuzz property sees through the spellings the strict reading
// refuses: without the refusal, host and matcher would disagree.
func TestWindowsPathReadsTheAttacks(t *testing.T) {
	for _, target := range []string{
		`/metadata\identity/oauth2/token`, "/metadata%5Cidentity/oauth2/token", "/metadata/%u0069dentity/oauth2/token",
		"/metadata/identity./oauth2/token", "/metadata/instance/%u002e%u002e/identity/oauth2/token",
		"/metadata%c0%afidentity/oauth2/token", "/metadata%e0%80%afidentity/oauth2/token", "/metadata/%ef%bd%89dentity/oauth2/token",
		"/metadata/identity%20/oauth2/token", "/metadata/instance/%c0%ae%c0%ae/identity/oauth2/token",
	} {
		if got := windowsPath(target); got != "/metadata/identity/oauth2/token" {
			t.Errorf("windowsPath(%q) = %q", target, got)
		}
	}
}

// TestRootMeansRoot: only Caller.Root (real and effective uid 0) counts
// as root, for the WireServer/HostGAPlugin requirement and the exempt
// requests (issue 15 item 5).
func TestRootMeansRoot(t *testing.T) {
	open := mustCompile(t, `{"defaultAccess":"allow"}`)
	denyAll := mustCompile(t, `{"defaultAccess":"deny"}`)
	uid0euid1000 := Caller{UID: 0, Root: false, UserName: "root", Groups: []string{"root"}, ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 20}
	uid1000euid0 := Caller{UID: 1000, Root: false, UserName: "alice", ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 21}
	var cases []decideCase
	for _, c := range []struct {
		name   string
		caller Caller
	}{{"uid 0 euid 1000", uid0euid1000}, {"uid 1000 euid 0", uid1000euid0}} {
		if c.caller.Elevated() {
			t.Errorf("%s: Elevated() = true", c.name)
		}
		for _, ep := range []hostproto.Endpoint{hostproto.WireServer, hostproto.HostGAPlugin} {
			for _, r := range []struct{ method, target string }{
				{"GET", "/machine/?comp=goalstate"}, {"PUT", "/vmAgentLog"}, {"POST", "/machine/?comp=telemetrydata"},
			} {
				for _, s := range []struct {
					name string
					snap *Snapshot
				}{{"open", open}, {"deny-all", denyAll}} {
					cases = append(cases, decideCase{name: c.name + " " + s.name + " " + ep.String() + " " + r.method + " " + r.target,
						snap: s.snap, endpoint: ep, method: r.method, target: r.target, caller: c.caller, want: Deny, reason: ReasonRootRequired})
				}
			}
		}
	}
	cases = append(cases,
		decideCase{name: "root exempt", snap: denyAll, endpoint: hostproto.HostGAPlugin, method: "PUT", target: "/vmAgentLog", caller: rootCurl, want: Allow, reason: ReasonExempt},
		decideCase{name: "root to wireserver", snap: open, endpoint: ws, target: "/machine/?comp=goalstate", caller: rootCurl, want: Allow, reason: ReasonDefaultAllow},
	)
	runDecide(t, cases)
	if !rootCurl.Elevated() {
		t.Error("Root caller is not elevated")
	}
}
