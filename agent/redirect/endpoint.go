package redirect

import (
	"fmt"
	"net/netip"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

// Kernel endpoint ids stored in the targets map (ebpf.md §6.2). They are
// private to the programs and the loader; the agent speaks
// hostproto.Endpoint.
const (
	kernelWireServer   uint32 = 1
	kernelHostGAPlugin uint32 = 2
	kernelIMDS         uint32 = 3
)

// kernelID returns the targets-map id of an endpoint.
func kernelID(ep hostproto.Endpoint) (uint32, error) {
	switch ep {
	case hostproto.WireServer:
		return kernelWireServer, nil
	case hostproto.HostGAPlugin:
		return kernelHostGAPlugin, nil
	case hostproto.IMDS:
		return kernelIMDS, nil
	}
	return 0, fmt.Errorf("unknown %s: want imds, wireserver or hostga", ep)
}

// DefaultAddresses returns the real addresses of the endpoints
// (host-protocol.md §1). Tests never use them: they pass loopback aliases.
func DefaultAddresses() map[hostproto.Endpoint]netip.AddrPort {
	return map[hostproto.Endpoint]netip.AddrPort{
		hostproto.WireServer:   netip.MustParseAddrPort("168.63.129.16:80"),
		hostproto.HostGAPlugin: netip.MustParseAddrPort("168.63.129.16:32526"),
		hostproto.IMDS:         netip.MustParseAddrPort("169.254.169.254:80"),
	}
}

// target returns the targets-map value for an endpoint in mode m, and false
// when the endpoint must have no entry: disabled is not redirected, audit
// fails open and enforce fails closed while the agent is not listening
// (ebpf.md §6.6).
func target(ep hostproto.Endpoint, m hostproto.Mode) (bpf.Target, bool, error) {
	id, err := kernelID(ep)
	if err != nil {
		return bpf.Target{}, false, err
	}
	switch m {
	case hostproto.ModeDisabled:
		return bpf.Target{}, false, nil
	case hostproto.ModeAudit:
		return bpf.Target{Endpoint: id, Policy: bpf.FailOpen}, true, nil
	case hostproto.ModeEnforce:
		return bpf.Target{Endpoint: id, Policy: bpf.FailClosed}, true, nil
	}
	return bpf.Target{}, false, fmt.Errorf("%s mode %s: want disabled, audit or enforce", ep, m)
}

// checkAddresses rejects unknown endpoints and addresses the programs cannot
// match (connect6 covers v4-mapped IPv6 of an IPv4 target).
func checkAddresses(addrs map[hostproto.Endpoint]netip.AddrPort) error {
	for ep, a := range addrs {
		if _, err := kernelID(ep); err != nil {
			return fmt.Errorf("redirect addresses: %w", err)
		}
		if !a.Addr().Unmap().Is4() || a.Port() == 0 {
			return fmt.Errorf("redirect address of %s %q: want an IPv4 address and port such as 169.254.169.254:80", ep, a)
		}
	}
	return nil
}
