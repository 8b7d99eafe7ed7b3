package hostsim

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
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
				if _, err := time.Parse(hostproto.DateLayout, hd); err != nil {
					t.Errorf("x-ms-azure-host-date %q: %v", hd, err)
				}
			}
			if got := resp.Close; got != tt.close {
				t.Errorf("Connection: close %v; want %v", got, tt.close)
			}
		})
	}
}

// TestUnreadableRecorded: a request the reader refuses is answered with the
// reader's status and still appears in the records.
func TestUnreadableRecorded(t *testing.T) {
	e := startEmulator(t, nil)
	c, err := net.Dial("tcp", e.Addrs().WireServer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("POST /machine/?comp=telemetrydata HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := lastRecord(t, e)
	if resp.StatusCode != 400 || rec.Class != "unreadable" || rec.Reason != rawhttp.ReasonBadFraming || rec.Status != 400 {
		t.Errorf("got %d, record %s; want 400 and an unreadable bad-framing record", resp.StatusCode, jsonString(rec))
	}
}
