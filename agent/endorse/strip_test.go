package endorse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// forged are client copies of the agent's headers, in several cases.
var forged = []rawhttp.Header{
	{Name: "x-ms-azure-host-claims", Value: `{ "isRoot": "true"}`},
	{Name: "X-MS-AZURE-HOST-DATE", Value: "Thu, 01 Jan 2099 00:00:00 GMT"},
	{Name: "X-Ms-Azure-Host-Authorization", Value: "Azure-HMAC-SHA256 " + testGUID + " " + strings.Repeat("ab", 32)},
	{Name: "x-ms-azure-host-other", Value: "x"},
	// CGI-style servers read '_' as '-' (HTTP_X_MS_AZURE_HOST_CLAIMS).
	{Name: "x_ms_azure_host_claims", Value: `{ "isRoot": "true"}`},
	{Name: "X-MS_AZURE-HOST_AUTHORIZATION", Value: "forged"},
}

// assertOnlyAgentHostHeaders fails unless the x-ms-azure-host-* headers of
// hs are exactly the agent's claims and date (and, when signed, its
// authorization, last).
func assertOnlyAgentHostHeaders(t *testing.T, hs []rawhttp.Header, root, signed bool) {
	t.Helper()
	var got []string
	for _, h := range hs {
		if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(h.Name), "_", "-"), "x-ms-azure-host-") {
			got = append(got, h.Name+": "+h.Value)
		}
	}
	want := []string{hostproto.HeaderClaims + ": " + hostproto.Claims(root), hostproto.HeaderDate + ": " + testDate}
	if signed {
		if len(got) == 3 && strings.HasPrefix(got[2], hostproto.HeaderAuthorization+": ") && !strings.Contains(got[2], strings.Repeat("ab", 32)) {
			got = got[:2]
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("host headers forwarded:\n%s\nwant only the agent's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientHostHeadersStrippedWhateverThePosition: client
// x-ms-azure-host-* headers are removed with and without a latched key,
// exempt or not, wherever they stand: first, after a few headers, and
// after enough headers (31–34, 100, 1000) to take the header collapse past
// its small-list path (≤32) into its map path, repeated too.
func TestClientHostHeadersStrippedWhateverThePosition(t *testing.T) {
	signer, err := sign.NewSigner(testKey, testGUID)
	if err != nil {
		t.Fatal(err)
	}
	for _, before := range []int{0, 1, 5, 30, 31, 32, 33, 34, 100, 1000} {
		for _, withKey := range []bool{false, true} {
			for _, target := range []struct{ method, path string }{{"GET", "/machine/?comp=goalstate"}, {"PUT", "/vmAgentLog"}} {
				name := fmt.Sprintf("%d before, key %v, %s %s", before, withKey, target.method, target.path)
				t.Run(name, func(t *testing.T) {
					var raw strings.Builder
					fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: h\r\n", target.method, target.path)
					for i := 0; i < before; i++ {
						fmt.Fprintf(&raw, "X-Filler-%d: %d\r\n", i%40, i) // repeats past 40
					}
					for _, f := range forged {
						fmt.Fprintf(&raw, "%s: %s\r\n", f.Name, f.Value)
					}
					raw.WriteString("Accept: */*\r\n")
					for _, f := range forged[:2] { // forged again, last
						fmt.Fprintf(&raw, "%s: %s\r\n", f.Name, f.Value)
					}
					raw.WriteString("Content-Length: 0\r\n\r\n")
					req := parse(t, raw.String())
					p := Params{Endpoint: hostproto.WireServer, IsRoot: true, Date: testDate}
					if withKey {
						p.Signer = signer
					}
					res, err := Transform(req, p)
					if err != nil {
						t.Fatal(err)
					}
					assertOnlyAgentHostHeaders(t, req.Headers, true, res.Signed)
					if res.Signed != (withKey && target.method == "GET") {
						t.Errorf("signed %v", res.Signed)
					}
				})
			}
		}
	}
}

// TestIsHostHeader: the agent's header prefix in any case and with '_'
// for '-' is the client's to lose; look-alikes that are not it stay.
func TestIsHostHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"x-ms-azure-host-claims":        true,
		"X-MS-AZURE-HOST-DATE":          true,
		"x_ms_azure_host_claims":        true,
		"X-Ms_Azure-Host_Authorization": true,
		"x-ms-azure-host-":              true,
		"x-ms-azure-host":               false,
		"x-ms-azure-hosts":              false,
		"x.ms.azure.host.claims":        false,
		"xx-ms-azure-host-claims":       false,
		"x-ms-azure-h\x8fst-claims":     false,
		"x-ms-azure-hOst-claims":        true,
		"Metadata":                      false,
	} {
		if got := isHostHeader(name); got != want {
			t.Errorf("isHostHeader(%q) = %v; want %v", name, got, want)
		}
	}
}
