package redirect

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mspguest/msp/bpf"
)

func TestTarget(t *testing.T) {
	tests := []struct {
		mode Mode
		want bpf.Target
		on   bool
	}{
		{Disabled, bpf.Target{}, false},
		{Audit, bpf.Target{Endpoint: 3, Policy: bpf.FailOpen}, true},
		{Enforce, bpf.Target{Endpoint: 3, Policy: bpf.FailClosed}, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			got, on, err := target(IMDS, tt.mode)
			if err != nil || on != tt.on || got != tt.want {
				t.Errorf("target(IMDS, %s) = %+v, %v, %v; want %+v, %v", tt.mode, got, on, err, tt.want, tt.on)
			}
		})
	}
	if _, _, err := target(IMDS, Mode(7)); err == nil {
		t.Error("unknown mode: want an error")
	}
}

func TestCheckAddresses(t *testing.T) {
	tests := []struct {
		name  string
		addrs map[Endpoint]netip.AddrPort
		err   string
	}{
		{"defaults", DefaultAddresses(), ""},
		{"loopback aliases", map[Endpoint]netip.AddrPort{IMDS: netip.MustParseAddrPort("127.0.0.169:80")}, ""},
		{"unknown endpoint", map[Endpoint]netip.AddrPort{9: netip.MustParseAddrPort("127.0.0.169:80")}, "unknown Endpoint(9)"},
		{"ipv6", map[Endpoint]netip.AddrPort{IMDS: netip.MustParseAddrPort("[::1]:80")}, "want an IPv4 address"},
		{"no port", map[Endpoint]netip.AddrPort{IMDS: netip.MustParseAddrPort("127.0.0.169:0")}, "want an IPv4 address"},
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
	want := map[Endpoint]string{WireServer: "168.63.129.16:80", HostGAPlugin: "168.63.129.16:32526", IMDS: "169.254.169.254:80"}
	for ep, a := range want {
		if got[ep].String() != a {
			t.Errorf("%s = %s; want %s", ep, got[ep], a)
		}
	}
}
