package audit

import (
	"net/netip"
	"time"

	"github.com/mspguest/msp/agent/identity"
)

// Decisions written in Entry.Decision.
const (
	DecisionAllow     = "allow"
	DecisionDeny      = "deny"
	DecisionAuditDeny = "audit-deny" // audit mode: would deny, forwarded
	DecisionExempt    = "exempt"
	DecisionRejected  = "rejected" // refused before authorization (framing, path, limits, upstream)
)

// Entry is one line of audit.jsonl (issue 8 item 6). The JSON keys are a
// contract with the Azure Monitor table and `mspctl policy suggest`.
type Entry struct {
	Time      time.Time `json:"time"`      // RFC 3339 with nanoseconds
	ID        string    `json:"id"`        // correlation id
	Endpoint  string    `json:"endpoint"`  // imds | wireserver | hostga
	Method    string    `json:"method"`    //
	Target    string    `json:"target"`    // raw request-target
	Decision  string    `json:"decision"`  // Decision* constants
	Reason    string    `json:"reason"`    // reason code (authorization.md §9)
	Privilege string    `json:"privilege"` //
	Role      string    `json:"role"`      //
	Identity  string    `json:"identity"`  //
	Status    int       `json:"status"`    // HTTP status returned to the client
	LatencyUs int64     `json:"latencyUs"` //
	Signed    bool      `json:"signed"`    //
	Caller    Caller    `json:"caller"`    //

	// Client (the connection's peer) and Dest (the original destination
	// from the kernel record) key the summaries of agent.md §7.2; they are
	// not written to audit.jsonl.
	Client netip.AddrPort `json:"-"`
	Dest   netip.AddrPort `json:"-"`
}

// Caller is the caller as the audit log shows it.
type Caller struct {
	UID     uint32   `json:"uid"`
	GID     uint32   `json:"gid"`
	PID     int32    `json:"pid"`
	User    string   `json:"user"`
	Groups  []string `json:"groups"`
	Exe     string   `json:"exe"`
	Process string   `json:"process"`
	CmdLine string   `json:"cmdline"`
	Root    bool     `json:"root"`
}

// CallerOf returns the caller as the audit log shows it.
func CallerOf(c *identity.Caller) Caller {
	return Caller{
		UID:     c.UID,
		GID:     c.GID,
		PID:     c.PID,
		User:    c.UserName,
		Groups:  c.Groups,
		Exe:     c.ExePath,
		Process: c.ProcessName,
		CmdLine: c.CmdLine,
		Root:    c.Root,
	}
}
