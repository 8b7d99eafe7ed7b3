package bpf

import (
	"fmt"
	"net/netip"
)

// Policy is what a target's connect() does when no agent listener accepts
// on the proxy address (ebpf.md §6.6).
type Policy uint8

const (
	// FailOpen leaves the destination unchanged (audit mode).
	FailOpen Policy = iota
	// FailClosed makes connect() fail with EPERM (enforce mode).
	FailClosed
)

func (p Policy) String() string {
	switch p {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Target is the value of one entry of the targets map.
type Target struct {
	Endpoint uint32 // endpoint id, 1 WireServer, 2 HostGAPlugin, 3 IMDS (ebpf.md §6.2)
	Policy   Policy
}

// target.flags bits in proxy.bpf.c.
const targetFailClosed = 1 << 0

func targetKey(dst netip.AddrPort) (proxyTargetKey, error) {
	a := dst.Addr().Unmap()
	if !a.Is4() || dst.Port() == 0 {
		return proxyTargetKey{}, fmt.Errorf("target %q: want an IPv4 address and a non-zero port (v4-mapped IPv6 is covered by connect6)", dst)
	}
	return proxyTargetKey{Ip4: ip4Key(a), Port: portKey(dst.Port())}, nil
}

func targetValue(t Target) (proxyTarget, error) {
	v := proxyTarget{Endpoint: t.Endpoint}
	switch t.Policy {
	case FailOpen:
	case FailClosed:
		v.Flags |= targetFailClosed
	default:
		return v, fmt.Errorf("target policy %d: want FailOpen or FailClosed", t.Policy)
	}
	return v, nil
}
