package authz

import "github.com/mspguest/msp/agent/hostproto"

// Decide authorizes one request (authorization.md §4 and §5), in this
// order:
//
//  1. the strict reading of the target (CheckTarget: agent.md §5.2 step 3,
//     authorization.md I-4, I-5, I-7, I-24): Deny, path-rejected (or
//     bad-request-line for the raw-byte class), in every mode;
//  2. an exempt request from an elevated caller (Caller.Root: real and
//     effective uid 0; host-protocol.md §8.8) to WireServer or
//     HostGAPlugin, the only endpoints that take them unsigned: Allow
//     without rule evaluation (to IMDS the same request is signed and
//     authorized like any other);
//  3. WireServer and HostGAPlugin refuse a caller that is not Root in every
//     mode: Deny, root-required;
//  4. mode disabled: Allow;
//  5. rules (§4.1): a matched privilege with a matched identity allows; a
//     matched privilege without one denies; otherwise defaultAccess.
//
// In audit mode a deny of step 5 becomes Audit with the same reason. A nil
// or zero Snapshot (not built by Compile, Merge or Unrestricted) denies
// (default-deny). Decide does not allocate.
func (s *Snapshot) Decide(r Request, c Caller) Decision {
	if s == nil || len(s.nodes) == 0 {
		return Decision{Verdict: Deny, Reason: ReasonDefaultDeny}
	}
	cn, _ := s.pool.Get().(*Canonical)
	if cn == nil {
		cn = new(Canonical)
	}
	defer s.pool.Put(cn)
	if err := cn.Parse(r.Target); err != nil {
		_, reason := refusal(err)
		return Decision{Verdict: Deny, Reason: reason}
	}
	if c.Elevated() && r.Endpoint.RootOnly() && hostproto.Exempt(r.Method, r.Target) {
		return Decision{Verdict: Allow, Reason: ReasonExempt}
	}
	if r.Endpoint.RootOnly() && !c.Elevated() {
		return Decision{Verdict: Deny, Reason: ReasonRootRequired}
	}
	if s.mode == hostproto.ModeDisabled {
		return Decision{Verdict: Allow, Reason: ReasonModeDisabled}
	}
	d := s.evaluate(cn, &c)
	if d.Verdict == Deny && s.mode == hostproto.ModeAudit {
		d.Verdict = Audit
	}
	return d
}

// queryResult is the outcome of a privilege's query constraints.
type queryResult uint8

const (
	queryNoMatch queryResult = iota
	queryMatch
	queryAmbiguous // matched, but a constrained key has differing values (I-9)
)

// evaluate applies the precedence of §4.1 to the canonical request.
func (s *Snapshot) evaluate(cn *Canonical, c *Caller) Decision {
	mismatch, ambiguous := int32(-1), int32(-1)
	n := int32(0)
	for depth := 0; ; depth++ {
		for _, pi := range s.nodes[n].privs {
			p := &s.privs[pi]
			switch p.matchQuery(cn) {
			case queryNoMatch:
				continue
			case queryAmbiguous:
				if ambiguous < 0 {
					ambiguous = pi
				}
				continue
			}
			for _, g := range p.grants {
				if id := &s.idents[g.identity]; id.matches(c) {
					return Decision{Verdict: Allow, Reason: ReasonGranted, Privilege: p.name, Role: g.role, Identity: id.name}
				}
			}
			if mismatch < 0 {
				mismatch = pi
			}
		}
		if depth == len(cn.segs) {
			break
		}
		next, ok := s.nodes[n].children[string(cn.bytes(cn.segs[depth]))]
		if !ok {
			break
		}
		n = next
	}
	switch {
	case mismatch >= 0:
		return Decision{Verdict: Deny, Reason: ReasonIdentityMismatch, Privilege: s.privs[mismatch].name}
	case ambiguous >= 0:
		return Decision{Verdict: Deny, Reason: ReasonAmbiguousQuery, Privilege: s.privs[ambiguous].name}
	case s.failClosed:
		return Decision{Verdict: Deny, Reason: ReasonLocalRulesFailed}
	case s.defaultAllow:
		return Decision{Verdict: Allow, Reason: ReasonDefaultAllow}
	}
	return Decision{Verdict: Deny, Reason: ReasonDefaultDeny}
}

// matchQuery applies §4.4 step 8 to every constraint: a key that is absent
// or never has the value fails; a key whose values differ is ambiguous.
func (p *privilege) matchQuery(cn *Canonical) queryResult {
	res := queryMatch
	for _, kv := range p.query {
		seen, equal := 0, 0
		for _, pr := range cn.pairs {
			if string(cn.bytes(pr.k)) != kv[0] {
				continue
			}
			seen++
			if string(cn.bytes(pr.v)) == kv[1] {
				equal++
			}
		}
		switch {
		case equal == 0:
			return queryNoMatch
		case equal < seen:
			res = queryAmbiguous
		}
	}
	return res
}

// matches reports whether every present selector matches the caller, byte
// for byte (§4.3, I-11, I-12). A selector never matches an empty caller
// value.
func (id *identity) matches(c *Caller) bool {
	if id.hasUser && (c.UserName == "" || c.UserName != id.user) {
		return false
	}
	if id.hasExe && (c.ExePath == "" || c.ExePath != id.exe) {
		return false
	}
	if id.hasProc && (c.ProcessName == "" || c.ProcessName != id.proc) {
		return false
	}
	if id.hasGroup {
		if id.group == "" {
			return false
		}
		for _, g := range c.Groups {
			if g == id.group {
				return true
			}
		}
		return false
	}
	return true
}
