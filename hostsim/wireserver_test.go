package hostsim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

// TestGoalStateFamily follows every configuration URL of the goal state
// (as an agent would, through the Host it used) and checks that each
// document is well-formed XML.
func TestGoalStateFamily(t *testing.T) {
	e := startEmulator(t, nil)
	g := latched(t, e)
	ws := e.Addrs().WireServer
	get := func(target string) []byte {
		t.Helper()
		resp, err := g.Do(ws, g.Request("GET", target, guest.WireServerHost, nil, rawhttp.Header{Name: "x-ms-version", Value: "2012-11-30"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 {
			t.Fatalf("GET %s: %d %s", target, resp.Status, resp.Body)
		}
		wellFormed(t, target, resp.Body)
		return resp.Body
	}
	get("/?comp=versions")
	gs := get("/machine?comp=goalstate")
	var doc struct {
		Configuration struct {
			HostingEnvironmentConfig, SharedConfig, ExtensionsConfig, FullConfig, Certificates string
		} `xml:"Container>RoleInstanceList>RoleInstance>Configuration"`
	}
	if err := xml.Unmarshal(gs, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Configuration
	for _, u := range []string{c.HostingEnvironmentConfig, c.SharedConfig, c.ExtensionsConfig, c.FullConfig, c.Certificates} {
		pu, err := url.Parse(u)
		if err != nil || pu.Host != guest.WireServerHost {
			t.Fatalf("goal state URL %q: want http://%s/...", u, guest.WireServerHost)
		}
		get(pu.RequestURI())
	}
}

func wellFormed(t *testing.T, name string, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v\n%s", name, err, b)
		}
	}
}

func TestWireServerAndHostGAEndpoints(t *testing.T) {
	e := startEmulator(t, nil)
	g := latched(t, e)
	a := e.Addrs()
	tests := []struct {
		addr, method, target string
		headers              []rawhttp.Header
		status               int
		want                 string
	}{
		{a.WireServer, "POST", "/machine/?comp=telemetrydata", nil, 200, ""},
		{a.WireServer, "PUT", "/vmAgentLog", nil, 200, ""},
		{a.WireServer, "GET", "/nope", nil, 404, "ResourceNotFound"},
		{a.WireServer, "GET", "/secure-channel/nope", nil, 404, "secure channel"},
		{a.HostGA, "GET", "/health", nil, 200, "OK"},
		{a.HostGA, "GET", "/vmSettings", nil, 200, `"extensionGoalStatesSource":"FastTrack"`},
		{a.HostGA, "GET", "/vmSettings", []rawhttp.Header{{Name: "If-None-Match", Value: vmSettingsETag}}, 304, ""},
		{a.HostGA, "PUT", "/status", nil, 200, ""},
		{a.HostGA, "GET", "/nope", nil, 404, "hostgaplugin"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp, err := g.Do(tt.addr, g.Request(tt.method, tt.target, "168.63.129.16", []byte("{}"), tt.headers...))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || !strings.Contains(string(resp.Body), tt.want) {
				t.Errorf("got %d %s; want %d containing %q", resp.Status, resp.Body, tt.status, tt.want)
			}
			if resp.Header.Get("x-ms-azure-host-date") == "" {
				t.Error("no x-ms-azure-host-date on a host answer")
			}
		})
	}
	var vs map[string]any
	resp, _ := g.Do(a.HostGA, g.Request("GET", "/vmSettings", "h", nil))
	if resp == nil || json.Unmarshal(resp.Body, &vs) != nil {
		t.Errorf("vmSettings is not JSON: %v", resp)
	}
}
