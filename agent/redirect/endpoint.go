package redirect

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/mspguest/msp/bpf"
)

// Endpoint identifies a metadata service; the values are the endpoint ids
// stored in the targets map (ebpf.md §6.2).
type Endpoint uint32

const (
	WireServer   Endpoint = 1
	HostGAPlugin Endpoint = 2
	IMDS         Endpoint = 3
)

// Endpoints lists every endpoint in id order.
func Endpoints() []Endpoint { return []Endpoint{WireServer, HostGAPlugin, IMDS} }

func (e Endpoint) String() string {
	switch e {
	case WireServer:
		return "WireServer"
	case HostGAPlugin:
		return "HostGAPlugin"
	case IMDS:
		return "IMDS"
	}
	return fmt.Sprintf("Endpoint(%d)", uint32(e))
}

// DefaultAddresses returns the real addresses of the endpoints
// (host-protocol.md §7.2). Tests never use them: they pass loopback aliases.
func DefaultAddresses() map[Endpoint]netip.AddrPort {
	return map[Endpoint]netip.AddrPort{
		WireServer:   netip.MustParseAddrPort("168.63.129.16:80"),
		HostGAPlugin: netip.MustParseAddrPort("168.63.129.16:32526"),
		IMDS:         netip.MustParseAddrPort("169.254.169.254:80"),
	}
}

// Mode is an endpoint's effective mode as far as redirection is concerned.
type Mode uint8

const (
	// Disabled: not redirected.
	Disabled Mode = iota
	// Audit: redirected; while the agent is not listening connects go
	// straight to the endpoint (fail open).
	Audit
	// Enforce: redirected; while the agent is not listening connects fail
	// with EPERM (fail closed).
	Enforce
)

func (m Mode) String() string {
	switch m {
	case Disabled:
		return "disabled"
	case Audit:
		return "audit"
	case Enforce:
		return "enforce"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// target returns the targets-map value for an endpoint in mode m, and false
// when the endpoint must have no entry.
func target(ep Endpoint, m Mode) (bpf.Target, bool, error) {
	switch m {
	case Disabled:
		return bpf.Target{}, false, nil
	case Audit:
		return bpf.Target{Endpoint: uint32(ep), Policy: bpf.FailOpen}, true, nil
	case Enforce:
		return bpf.Target{Endpoint: uint32(ep), Policy: bpf.FailClosed}, true, nil
	}
	return bpf.Target{}, false, fmt.Errorf("%s mode %d: want disabled, audit or enforce", ep, m)
}

// checkAddresses rejects unknown endpoints and addresses the programs cannot
// match (connect6 covers v4-mapped IPv6 of an IPv4 target).
func checkAddresses(addrs map[Endpoint]netip.AddrPort) error {
	for ep, a := range addrs {
		if !slices.Contains(Endpoints(), ep) {
			return fmt.Errorf("redirect addresses: unknown %s: want WireServer, HostGAPlugin or IMDS", ep)
		}
		if !a.Addr().Unmap().Is4() || a.Port() == 0 {
			return fmt.Errorf("redirect address of %s %q: want an IPv4 address and port such as 169.254.169.254:80", ep, a)
		}
	}
	return nil
}
