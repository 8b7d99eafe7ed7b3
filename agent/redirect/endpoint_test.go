package redirect

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

func TestTarget(t *testing.T) {
	tests := []struct {
		mode hostproto.Mode
		want bpf.Target
		on   bool
	}{
		{hostproto.ModeDisabled, bpf.Target{}, false},
		{hostproto.ModeAudit, bpf.Target{Endpoint: 3, Policy: bpf.FailOpen}, true},
		{hostproto.ModeEnforce, bpf.Target{Endpoint: 3, Policy: bpf.FailClosed}, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			got, on, err := target(hostproto.IMDS, tt.mode)
			if err != nil || on != tt.on || got != tt.want {
				t.Errorf("target(IMDS, %s) = %+v, %v, %v; want %+v, %v", tt.mode, got, on, err, tt.want, tt.on)
			}
		})
	}
	if _, _, err := target(hostproto.IMDS, hostproto.Mode(7)); err == nil {
		t.Error("unknown mode: want an error")
	}
	if _, _, err := target(hostproto.Endpoint(9), hostproto.ModeAudit); err == nil {
		t.Error("unknown endpoint: want an error")
	}
}

func TestCheckAddresses(t *testing.T) {
	tests := []struct {
		name  string
		addrs map[hostproto.Endpoint]netip.AddrPort
		err   string
	}{
		{"defaults", DefaultAddresses(), ""},
		{"loopback aliases", map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: netip.MustParseAddrPort("127.0.0.169:80")}, ""},
		{"unknown endpoint", map[hostproto.Endpoint]netip.AddrPort{hostproto.Endpoint(9): netip.MustParseAddrPort("127.0.0.169:80")}, "unknown endpoint(9)"},
		{"ipv6", map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: netip.MustParseAddrPort("[::1]:80")}, "want an IPv4 address"},
		{"no port", map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: netip.MustParseAddrPort("127.0.0.169:0")}, "want an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAddresses(tt.addrs)
			if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("got %v; want %q", err, tt.err)
			}
		})
	}
}

// TestDefaultAddresses pins the real endpoints (host-protocol.md §7.2); they
// are only compared here, never dialled.
func TestDefaultAddresses(t *testing.T) {
	got := DefaultAddresses()
	want := map[hostproto.Endpoint]string{hostproto.WireServer: "168.63.129.16:80", hostproto.HostGAPlugin: "168.63.129.16:32526", hostproto.IMDS: "169.254.169.254:80"}
	for ep, a := range want {
		if got[ep].String() != a {
			t.Errorf("%s = %s; want %s", ep, got[ep], a)
		}
	}
}
