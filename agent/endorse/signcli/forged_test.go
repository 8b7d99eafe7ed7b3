package signcli

import (
	"strings"
	"testing"
)

// TestSignStripsForgedHostHeaders: client x-ms-azure-host-* headers, in
// any case and anywhere in the request, never reach the output: exactly
// one claims, one date and one authorization header remain, all the
// agent's, and no forged value survives.
func TestSignStripsForgedHostHeaders(t *testing.T) {
	const forgedSig = "Azure-HMAC-SHA256 e3882f98-da8d-4410-8394-06c23462781c ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
	const forgedDate = "Thu, 01 Jan 2099 00:00:00 GMT"
	var filler strings.Builder
	for i := 0; i < 40; i++ {
		filler.WriteString("X-Filler: " + strings.Repeat("g", i) + "\r\n")
	}
	for _, tt := range []struct {
		name, raw string
		args      []string
	}{
		{"first", "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nX-MS-AZURE-HOST-AUTHORIZATION: " + forgedSig + "\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nX-Ms-Azure-Host-Date: " + forgedDate + "\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n", nil},
		{"after many headers", "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\n" + filler.String() + "x-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nx-ms-azure-host-date: " + forgedDate + "\r\nx-ms-azure-host-authorization: " + forgedSig + "\r\nx-ms-azure-host-extra: 1\r\n\r\n", nil},
		{"exempt", "PUT /vmAgentLog HTTP/1.1\r\nHost: 168.63.129.16\r\nx-ms-azure-host-authorization: " + forgedSig + "\r\nContent-Length: 0\r\n\r\n", []string{"--root"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runSign(t, tt.raw, append(append([]string{}, baseArgs...), tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			lower := strings.ToLower(out)
			forgeries := []string{"ffffffff", forgedDate, "x-ms-azure-host-extra"}
			if len(tt.args) == 0 { // not --root: a forged isRoot true must not survive
				forgeries = append(forgeries, `"isroot": "true"`)
			}
			for _, forged := range forgeries {
				if strings.Contains(lower, strings.ToLower(forged)) {
					t.Errorf("forged %q survived:\n%s", forged, out)
				}
			}
			exempt := strings.HasPrefix(tt.raw, "PUT /vmAgentLog")
			for name, want := range map[string]int{"x-ms-azure-host-claims:": 1, "x-ms-azure-host-date:": 1, "x-ms-azure-host-authorization:": map[bool]int{true: 0, false: 1}[exempt]} {
				if n := strings.Count(lower, "\r\n"+name); n != want {
					t.Errorf("%d %s headers; want %d:\n%s", n, name, want, out)
				}
			}
		})
	}
}
