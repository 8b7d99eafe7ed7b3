package authz

import "github.com/mspguest/msp/agent/hostproto"

// Verdict is what the proxy does with a request (authorization.md §5).
type Verdict uint8

const (
	// Deny means 403 Forbidden with Connection: close.
	Deny Verdict = iota
	// Allow means forward and sign.
	Allow
	// Audit means "would deny, forwarded": forward, sign and record the
	// request in the failed summary (OkWithAudit).
	Audit
)

// String returns "deny", "allow" or "audit".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Audit:
		return "audit"
	}
	return "deny"
}

// Reason is a stable reason code. The deny codes are those of
// authorization.md §9; an Audit decision carries the code of the deny it
// stands for. The allow codes are this package's own, for logs and
// `mspctl policy explain`.
type Reason string

// Deny reasons (authorization.md §9) that Decide returns; the proxy owns
// the other codes of §9 (bad-request, misdirected, …).
const (
	ReasonRootRequired     Reason = "root-required"
	ReasonIdentityMismatch Reason = "privilege-identity-mismatch"
	ReasonAmbiguousQuery   Reason = "ambiguous-query"
	ReasonDefaultDeny      Reason = "default-deny"
	// ReasonLocalRulesFailed: a strict source failed (the local rule file,
	// or the settings item, which §9 has no code of its own for).
	ReasonLocalRulesFailed Reason = "local-rules-fail-closed"
	ReasonPathRejected     Reason = "path-rejected"
	// ReasonBadRequestLine: a target outside origin form or with a raw
	// byte that is not an RFC 3986 path or query character (I-24); the
	// request reader refuses these first, with the same code.
	ReasonBadRequestLine Reason = "bad-request-line"
)

// Allow reasons (project decision; not sent on the wire).
const (
	ReasonModeDisabled Reason = "mode-disabled"
	ReasonExempt       Reason = "exempt"
	ReasonGranted      Reason = "privilege-granted"
	ReasonDefaultAllow Reason = "default-allow"
)

// Decision is the result of Snapshot.Decide. It is a small value: the
// names point into the Snapshot, nothing is allocated.
type Decision struct {
	Verdict Verdict
	Reason  Reason
	// Privilege is the privilege that decided the request (granted it, or
	// matched it without a matching identity); empty when none did.
	Privilege string
	// Role and Identity are set when a privilege granted the request: the
	// role assignment and the identity that matched the caller.
	Role     string
	Identity string
}

// Forward reports whether the proxy forwards the request (Allow or Audit).
func (d Decision) Forward() bool { return d.Verdict != Deny }

// Request is what Decide needs from one HTTP request.
type Request struct {
	// Endpoint is the service chosen from the eBPF-recorded original
	// destination, never from the Host header (I-23).
	Endpoint hostproto.Endpoint
	// Method is the request method as sent ("GET", "POST", …).
	Method string
	// Target is the raw request-target (origin form: path and query) as
	// sent; it is only read.
	Target string
}

// Caller is the identity of the connecting process (agent.md §5.1,
// authorization.md §4.3). A selector never matches an empty value: the
// proxy leaves ExePath and ProcessName empty when /proc could not be
// trusted, and UserName empty when the uid has no name.
type Caller struct {
	// UID is the real uid; informational since Root decides elevation.
	UID         uint32
	UserName    string
	Groups      []string
	ExePath     string
	ProcessName string
	PID         int32
	// Root is true only when the caller's real and effective uid are both
	// 0 (issue 15 item 5); unknown means false.
	Root bool
}

// Elevated reports whether the caller runs as root (runAsElevated, the
// isRoot claim): its real and effective uid are both 0 (Root). UID 0
// alone is not enough.
func (c *Caller) Elevated() bool { return c.Root }
