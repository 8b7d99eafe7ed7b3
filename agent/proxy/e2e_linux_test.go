package proxy

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

// TestCurlAndGoClients: curl and a Go client, as root and as uid 65534,
// through redirector and proxy to the emulator, allowed and denied per the
// IMDS rules; every forwarded request verified valid by the emulator.
func TestCurlAndGoClients(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name   string
		uid    int
		path   string
		status int
		reason string
	}{
		{"root instance", 0, "/metadata/instance?api-version=2021-02-01", 200, ""},
		{"root identity", 0, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/", 200, ""},
		{"nobody instance", nobody, "/metadata/instance?api-version=2021-02-01", 200, ""},
		{"nobody identity", nobody, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/", 403, "privilege-identity-mismatch"},
		{"nobody elsewhere", nobody, "/metadata/versions", 403, "default-deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cl := range []string{"curl", "go"} {
				since := e.lastSeq()
				var status, reason string
				if cl == "curl" {
					out, err := e.run(tt.uid, nil, "/usr/bin/curl", "-s", "-o", "/dev/null", "-H", "Metadata: true",
						"-w", "%{http_code} %header{x-ms-azure-proxy-reason}", "http://"+e.addrs[hostproto.IMDS].String()+tt.path)
					if err != nil {
						t.Fatalf("curl: %v", err)
					}
					status, reason, _ = strings.Cut(strings.TrimSpace(out), " ")
				} else {
					out := e.client(tt.uid, "http", hostproto.IMDS, tt.path)
					f := strings.Fields(out)
					if len(f) < 2 {
						t.Fatalf("go client printed %q", out)
					}
					status = f[0]
					if len(f) > 2 {
						reason = f[2]
					}
				}
				if status != strconv.Itoa(tt.status) || reason != tt.reason {
					t.Errorf("%s: got %s %q; want %d %q", cl, status, reason, tt.status, tt.reason)
				}
				recs := e.records(since)
				if tt.status == 403 {
					if len(recs) != 0 {
						t.Errorf("%s: a denied request reached the emulator: %+v", cl, recs)
					}
					continue
				}
				if len(recs) != 1 || !recs[0].Valid || !recs[0].Signed || recs[0].RawTarget != tt.path || *recs[0].IsRoot != (tt.uid == 0) {
					t.Errorf("%s: emulator saw %+v; want one valid signed request for %s", cl, recs, tt.path)
				}
			}
		})
	}
}
