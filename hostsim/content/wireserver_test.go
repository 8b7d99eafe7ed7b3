package content

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
	g := &guest.Guest{IsRoot: true}
	get := func(target string) []byte {
		t.Helper()
		resp := WireServer(g.Request("GET", target, guest.WireServerHost, nil, rawhttp.Header{Name: "x-ms-version", Value: "2012-11-30"}))
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
	g := &guest.Guest{IsRoot: true}
	tests := []struct {
		serve          func(*rawhttp.Request) Response
		method, target string
		headers        []rawhttp.Header
		status         int
		want           string
	}{
		{WireServer, "POST", "/machine/?comp=telemetrydata", nil, 200, ""},
		{WireServer, "PUT", "/vmAgentLog", nil, 200, ""},
		{WireServer, "GET", "/nope", nil, 404, "ResourceNotFound"},
		{WireServer, "GET", "/machine/x/y?comp=config&type=nope", nil, 404, "Unknown configuration document"},
		{HostGA, "GET", "/health", nil, 200, "OK"},
		{HostGA, "GET", "/vmSettings", nil, 200, `"extensionGoalStatesSource":"FastTrack"`},
		{HostGA, "GET", "/vmSettings", []rawhttp.Header{{Name: "If-None-Match", Value: VMSettingsETag}}, 304, ""},
		{HostGA, "PUT", "/status", nil, 200, ""},
		{HostGA, "GET", "/nope", nil, 404, "hostgaplugin"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp := tt.serve(g.Request(tt.method, tt.target, "168.63.129.16", []byte("{}"), tt.headers...))
			if resp.Status != tt.status || !strings.Contains(string(resp.Body), tt.want) {
				t.Errorf("got %d %s; want %d containing %q", resp.Status, resp.Body, tt.status, tt.want)
			}
		})
	}
	var vs map[string]any
	if resp := HostGA(g.Request("GET", "/vmSettings", "h", nil)); json.Unmarshal(resp.Body, &vs) != nil {
		t.Errorf("vmSettings is not JSON: %s", resp.Body)
	}
}
