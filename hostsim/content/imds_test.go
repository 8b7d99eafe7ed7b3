package content

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

func TestIMDSEndpoints(t *testing.T) {
	md := rawhttp.Header{Name: "Metadata", Value: "true"}
	tests := []struct {
		name    string
		target  string
		headers []rawhttp.Header
		status  int
		want    string // substring of the body
	}{
		{"no metadata header", "/metadata/instance?api-version=2021-02-01", nil, 400, "Required metadata header not specified"},
		{"metadata false", "/metadata/instance?api-version=2021-02-01", []rawhttp.Header{{Name: "Metadata", Value: "false"}}, 400, "Required metadata header"},
		{"token without metadata", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", nil, 400, `"error_description":"Required metadata header not specified"`},
		{"forwarded", "/metadata/instance?api-version=2021-02-01", []rawhttp.Header{md, {Name: "X-Forwarded-For", Value: "10.0.0.9"}}, 400, "X-Forwarded-For"},
		{"no api-version", "/metadata/instance", []rawhttp.Header{md}, 400, "newest-versions"},
		{"unknown api-version", "/metadata/instance?api-version=2099-01-01", []rawhttp.Header{md}, 400, "api-version is invalid"},
		{"versions", "/metadata/versions", []rawhttp.Header{md}, 200, `"2018-02-01"`},
		{"instance", "/metadata/instance?api-version=2021-02-01&format=json", []rawhttp.Header{md}, 200, `"vmId":"5c08b38e-4d57-4c23-ac45-aca61037f084"`},
		{"instance new field", "/metadata/instance/compute?api-version=2021-02-01", []rawhttp.Header{md}, 200, `"osProfile"`},
		{"leaf as text", "/metadata/instance/compute/vmSize?api-version=2021-02-01&format=text", []rawhttp.Header{md}, 200, "Standard_D2s_v5"},
		{"array index", "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text", []rawhttp.Header{md}, 200, "10.0.0.4"},
		{"node as text", "/metadata/instance/network?api-version=2021-02-01&format=text", []rawhttp.Header{md}, 200, "interface/"},
		{"bad format", "/metadata/instance?api-version=2021-02-01&format=xml", []rawhttp.Header{md}, 400, "format"},
		{"missing node", "/metadata/instance/compute/nope?api-version=2021-02-01", []rawhttp.Header{md}, 404, "Not found"},
		{"token", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", []rawhttp.Header{md}, 200, `"resource":"https://management.azure.com/"`},
		{"token without resource", "/metadata/identity/oauth2/token?api-version=2018-02-01", []rawhttp.Header{md}, 400, "audience"},
		{"token unknown identity", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id=abc", []rawhttp.Header{md}, 400, "Identity not found"},
		{"scheduled events", "/metadata/scheduledevents?api-version=2020-07-01", []rawhttp.Header{md}, 200, `"Events":[]`},
		{"attested", "/metadata/attested/document?api-version=2021-02-01&nonce=1234", []rawhttp.Header{md}, 200, `"encoding":"pkcs7"`},
		{"unknown path", "/metadata/nope?api-version=2021-02-01", []rawhttp.Header{md}, 404, "Not found"},
	}
	g := &guest.Guest{IsRoot: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := IMDS(g.Request("GET", tt.target, "169.254.169.254", nil, tt.headers...), time.Now())
			if resp.Status != tt.status || !strings.Contains(string(resp.Body), tt.want) {
				t.Errorf("got %d %s; want %d containing %s", resp.Status, resp.Body, tt.status, tt.want)
			}
		})
	}
}

// TestIMDSAPIVersionGatesFields: a field newer than the api-version is left
// out.
func TestIMDSAPIVersionGatesFields(t *testing.T) {
	g := &guest.Guest{IsRoot: true}
	for _, tt := range []struct {
		version string
		has     bool
	}{{"2019-06-01", false}, {"2021-01-01", true}} {
		resp := IMDS(g.Request("GET", "/metadata/instance/compute?api-version="+tt.version, "169.254.169.254", nil, rawhttp.Header{Name: "Metadata", Value: "true"}), time.Now())
		var c map[string]any
		if err := json.Unmarshal(resp.Body, &c); err != nil {
			t.Fatal(err)
		}
		if _, ok := c["osProfile"]; ok != tt.has {
			t.Errorf("api-version %s: osProfile present %v; want %v", tt.version, ok, tt.has)
		}
	}
}
