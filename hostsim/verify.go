package hostsim

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/content"
	"github.com/mspguest/msp/hostsim/hostsig"
	"github.com/mspguest/msp/hostsim/wire"
)

// Rejection reasons, one per verification record and rejection body.
const (
	ReasonUnsigned      = "unsigned"       // no x-ms-azure-host-authorization
	ReasonUnknownKey    = "unknown-key"    // the guid names no valid key
	ReasonBadSignature  = "bad-signature"  // malformed header or MAC mismatch
	ReasonDateSkew      = "date-skew"      // x-ms-azure-host-date missing, unparseable or outside the window
	ReasonMissingClaims = "missing-claims" // x-ms-azure-host-claims missing or without a readable isRoot
	ReasonNotRoot       = "not-root"       // isRoot false on a root-only endpoint
)

// class says which signing rule governs a request.
type class uint8

const (
	classSigned      class = iota // must be signed in enforce mode
	classExempt                   // host-protocol.md §8.8: never signed
	classBootstrap                // status and key acquisition: signed only when the guest holds a key
	classAttestation              // always verified, with the key being attested
)

// classify applies §8.8 (method plus whole lower-cased path-and-query) and
// the secure-channel bootstrap rule of issue 3.
func classify(ep hostproto.Endpoint, method, target string) class {
	switch {
	case hostproto.Exempt(method, target):
		return classExempt
	case ep != hostproto.WireServer:
		return classSigned
	}
	path := lowerPath(target)
	switch {
	case method == "GET" && path == "/secure-channel/status", method == "POST" && path == "/secure-channel/key":
		return classBootstrap
	case method == "POST" && attestationGUID(path) != "":
		return classAttestation
	}
	return classSigned
}

// attestationGUID returns the guid of /secure-channel/key/{guid}/key-attestation
// (lower-cased path), or "".
func attestationGUID(lowerPath string) string {
	rest, ok := strings.CutPrefix(lowerPath, "/secure-channel/key/")
	if !ok {
		return ""
	}
	guid, ok := strings.CutSuffix(rest, "/key-attestation")
	if !ok || !hostproto.ValidGUID(guid) {
		return ""
	}
	return guid
}

// verdict is the outcome of checking one request.
type verdict struct {
	signed  bool
	reason  string // "" when every check passed
	keyGUID string
	isRoot  *bool
}

// check verifies the signature with the key lookup returns for the header's
// guid (hostsig, the host's own §8), then the claims, then the date
// (window 0 = no date check). The first failure is the reason:
// authenticity first, content second.
func check(in *received, lookup func(guid string) []byte, eq hostsig.Equal, now time.Time, window time.Duration) verdict {
	var v verdict
	v.isRoot = parseIsRoot(in.req)
	auth, ok := in.req.Value(hostsig.AuthorizationName)
	if !ok {
		v.reason = ReasonUnsigned
		return v
	}
	v.signed = true
	p, err := hostsig.ParseAuthorization(auth)
	if err != nil {
		v.reason = ReasonBadSignature
		return v
	}
	v.keyGUID = p.GUID
	key := lookup(p.GUID)
	if key == nil {
		v.reason = ReasonUnknownKey
		return v
	}
	if hostsig.Check(eq, p.MAC, in.macFor(key)) != nil {
		v.reason = ReasonBadSignature
		return v
	}
	if v.isRoot == nil {
		v.reason = ReasonMissingClaims
		return v
	}
	if window > 0 && !dateFresh(in.req, now, window) {
		v.reason = ReasonDateSkew
	}
	return v
}

// parseIsRoot reads the isRoot claim; GPA sends it as a quoted boolean
// (`{ "isRoot": "true"}`), a JSON boolean is accepted too. nil means the
// header is missing or unreadable.
func parseIsRoot(req *wire.Request) *bool {
	raw, ok := req.Value(hostproto.HeaderClaims)
	if !ok {
		return nil
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &claims) != nil {
		return nil
	}
	var b bool
	var s string
	switch v := claims["isRoot"]; {
	case v == nil:
		return nil
	case json.Unmarshal(v, &b) == nil:
	case json.Unmarshal(v, &s) == nil && strings.EqualFold(s, "true"):
		b = true
	case json.Unmarshal(v, &s) == nil && strings.EqualFold(s, "false"):
		b = false
	default:
		return nil
	}
	return &b
}

func dateFresh(req *wire.Request, now time.Time, window time.Duration) bool {
	raw, ok := req.Value(hostproto.HeaderDate)
	if !ok {
		return false
	}
	t, err := time.Parse(hostproto.DateLayout, raw)
	if err != nil {
		return false
	}
	d := now.Sub(t)
	return d <= window && d >= -window
}

// decision is what the guard decided before the service handler runs.
type decision struct {
	class  class
	mode   hostproto.Mode
	v      verdict
	reject *content.Response // non-nil: answer with this, do not serve
}

// decide computes the verdict and applies the endpoint's mode
// (host-protocol.md §9, §11). Attestation is verified in every mode, with
// the key named in its path.
func (e *Emulator) decide(ep hostproto.Endpoint, in *received) decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	req := in.req
	d := decision{class: classify(ep, req.Method, req.Target), mode: e.state.Modes.Of(ep)}
	window := time.Duration(e.state.DateSkewSeconds) * time.Second
	lookup := func(guid string) []byte { return e.keyFor(d.class, req.Target, guid) }
	d.v = check(in, lookup, e.macEqual, e.hostNow(), window)
	if d.v.reason == "" && d.class == classSigned && e.state.RootOnly && ep.RootOnly() && !*d.v.isRoot {
		d.v.reason = ReasonNotRoot
	}
	switch {
	case d.class == classAttestation:
		if d.v.reason != "" {
			d.reject = rejection(e.state.RejectStatus, d.v.reason)
		}
	case d.class != classSigned, d.mode != hostproto.ModeEnforce, d.v.reason == "":
	case d.v.reason == ReasonNotRoot:
		d.reject = rejection(403, ReasonNotRoot)
	default:
		d.reject = rejection(e.state.RejectStatus, d.v.reason)
	}
	return d
}

// keyFor is the key a request of class c to target verifies with when its
// header names guid: the attested key, or for an attestation the issued
// key named in its path (and only that one). nil: unknown. Caller holds mu.
func (e *Emulator) keyFor(c class, target, guid string) []byte {
	if c != classAttestation {
		return e.keys.verifier(guid, e.hostNow())
	}
	if guid != attestationGUID(lowerPath(target)) {
		return nil // signed with another key than the one attested
	}
	return e.keys.issuedKey(guid)
}

// verifyKey is keyFor for a request read outside decide (a streamed body).
func (e *Emulator) verifyKey(ep hostproto.Endpoint, c class, target, guid string) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keyFor(c, target, guid)
}

// lowerPath is the lower-cased path of a request-target (before any '?').
func lowerPath(target string) string {
	path, _, _ := strings.Cut(target, "?")
	return strings.ToLower(path)
}

var reasonText = map[string]string{
	ReasonUnsigned:      "the request carries no x-ms-azure-host-authorization header",
	ReasonUnknownKey:    "the authorization header names a key the host does not hold (or has not attested)",
	ReasonBadSignature:  "the signature does not match the request as received",
	ReasonDateSkew:      "x-ms-azure-host-date is missing or outside the host's freshness window",
	ReasonMissingClaims: "x-ms-azure-host-claims is missing or has no readable isRoot claim",
	ReasonNotRoot:       "this endpoint serves only callers whose isRoot claim is true",
}

// HeaderReason carries the rejection reason on emulator rejections.
const HeaderReason = "x-ms-hostsim-reason"

func rejection(status int, reason string) *content.Response {
	body, _ := json.Marshal(map[string]string{"error": reason, "message": reasonText[reason]})
	return &content.Response{
		Status:      status,
		ContentType: "application/json; charset=utf-8",
		Header:      []rawhttp.Header{{Name: HeaderReason, Value: reason}},
		Body:        body,
	}
}
