package hostsim

import (
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

// TestFraming: WireServer and HostGAPlugin answers carry
// x-ms-azure-host-date (host-protocol.md §7.4), IMDS answers do not; a
// rejection closes the connection; unknown secure-channel paths are 404.
func TestFraming(t *testing.T) {
	e := startEmulator(t, nil)
	g := latched(t, e)
	a := e.Addrs()
	tests := []struct {
		name, addr, method, target string
		status                     int
		hostDate, close            bool
	}{
		{"wireserver", a.WireServer, "GET", "/?comp=versions", 200, true, false},
		{"hostga", a.HostGA, "GET", "/health", 200, true, false},
		{"imds", a.IMDS, "GET", "/metadata/versions", 200, false, false},
		{"unknown secure-channel path", a.WireServer, "GET", "/secure-channel/nope", 404, true, false},
		{"rejection", a.WireServer, "GET", "/?comp=versions&unsigned", 401, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			who := g
			if strings.Contains(tt.target, "unsigned") {
				who = &guest.Guest{IsRoot: true}
			}
			resp, err := who.Do(tt.addr, who.Request(tt.method, tt.target, "h", nil, rawhttp.Header{Name: "Metadata", Value: "true"}))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status {
				t.Fatalf("status %d %s; want %d", resp.Status, resp.Body, tt.status)
			}
			hd := resp.Header.Get("x-ms-azure-host-date")
			if (hd != "") != tt.hostDate {
				t.Errorf("x-ms-azure-host-date %q; want present=%v", hd, tt.hostDate)
			}
			if hd != "" {
				if _, err := time.Parse(guest.HostDateLayout, hd); err != nil {
					t.Errorf("x-ms-azure-host-date %q: %v", hd, err)
				}
			}
			if got := resp.Close; got != tt.close {
				t.Errorf("Connection: close %v; want %v", got, tt.close)
			}
		})
	}
}
