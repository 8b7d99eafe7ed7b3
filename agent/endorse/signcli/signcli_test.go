package signcli

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/authz/targettest"
)

const (
	testKey  = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"
	testGUID = "e3882f98-da8d-4410-8394-06c23462781c"
	testDate = "Wed, 23 Apr 2025 12:00:00 GMT"
)

func runSign(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

var baseArgs = []string{"--key", testKey, "--guid", testGUID, "--date", testDate}

// The worked example of host-protocol.md §8.6, sent as curl would.
const workedExample = "GET /metadata/instance?api-version=2021-02-01&format=json HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nMetadata: true\r\n\r\n"

func TestSignWorkedExample(t *testing.T) {
	code, out, errs := runSign(t, workedExample, baseArgs...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "GET /metadata/instance?api-version=2021-02-01&format=json HTTP/1.1\r\n" +
		"Host: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nMetadata: true\r\n" +
		"x-ms-azure-host-claims: { \"isRoot\": \"false\"}\r\n" +
		"x-ms-azure-host-date: Wed, 23 Apr 2025 12:00:00 GMT\r\n" +
		"x-ms-azure-host-authorization: Azure-HMAC-SHA256 e3882f98-da8d-4410-8394-06c23462781c 13750084151509ba36adee0b633c8438723d6799434e4c90ec2dc95983c8f323\r\n\r\n"
	if out != want {
		t.Fatalf("output:\n%q\nwant\n%q", out, want)
	}
}

// TestSignExempt: the exempt requests are written unsigned with their body
// in its own framing only from root to wireserver or hostga; elsewhere
// they are signed like any request.
func TestSignExempt(t *testing.T) {
	in := "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\n\r\n"
	tests := []struct {
		name   string
		args   []string
		signed bool
		body   string
	}{
		{"root to hostga", []string{"--root", "--endpoint", "hostga"}, false, "Transfer-Encoding: chunked\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nx-ms-azure-host-date: " + testDate + "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"root to imds", []string{"--root", "--endpoint", "imds"}, true, "Content-Length: 3\r\n"},
		{"not root", []string{"--endpoint", "hostga"}, true, "Content-Length: 3\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runSign(t, in, append(append([]string(nil), baseArgs...), tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if strings.Contains(out, "x-ms-azure-host-authorization") != tt.signed || !strings.Contains(out, tt.body) {
				t.Errorf("output %q; want signed %v and %q", out, tt.signed, tt.body)
			}
		})
	}
	if code, _, errs := runSign(t, in, append(append([]string(nil), baseArgs...), "--endpoint", "nowhere")...); code != 2 || !strings.Contains(errs, "--endpoint") {
		t.Errorf("bad endpoint: exit %d %q; want 2 naming --endpoint", code, errs)
	}
}

// TestSignVerifiesIndependently checks mspctl's output with a separate
// implementation of the signature (Python's hmac, scripts/verify-signature.py).
func TestSignVerifiesIndependently(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the independent HMAC check (Debian: apt-get install python3)")
	}
	script := filepath.Join("..", "..", "..", "scripts", "verify-signature.py")
	requests := map[string]string{
		"worked example":  workedExample,
		"chunked post":    "POST /machine/?comp=goalstate&B=2&a=1&a=0&flag HTTP/1.1\r\nHost: 168.63.129.16\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a:  2 \r\n\r\n3\r\nabc\r\n4\r\n\xe2\x82\xac!\r\n0\r\n\r\n",
		"forged headers":  "GET /metadata/identity/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nX-MS-AZURE-HOST-AUTHORIZATION: Azure-HMAC-SHA256 x y\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\n\r\n",
		"encoded path":    "GET /machine/abc%2Ddef/%3Fx.%5Fy?comp=config&keyOnly&comp=again HTTP/1.1\r\nHost: 168.63.129.16\r\nx-ms-version: 2012-11-30\r\n\r\n",
		"json put":        "PUT /status HTTP/1.1\r\nHost: 168.63.129.16:32526\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"ok\": true }",
		"empty query":     "GET /metadata/versions? HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n",
		"query collision": "GET /x?x=y&xy&=z&& HTTP/1.1\r\nHost: h\r\n\r\n",
	}
	for name, raw := range requests {
		for _, root := range []bool{false, true} {
			args := baseArgs
			if root {
				args = append(append([]string(nil), baseArgs...), "--root")
			}
			code, out, errs := runSign(t, raw, args...)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", name, code, errs)
			}
			if want := map[bool]string{true: `"isRoot": "true"`, false: `"isRoot": "false"`}[root]; !strings.Contains(out, want) {
				t.Errorf("%s: claims %s missing", name, want)
			}
			cmd := exec.Command(python, script, testKey)
			cmd.Stdin = strings.NewReader(out)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s (root %v): independent verification failed: %v: %s\n%q", name, root, err, msg, out)
			}
		}
	}
}

func TestSignRefuses(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no request", "", baseArgs, "no request line"},
		{"garbage", "hello\r\n\r\n", baseArgs, "request line"},
		{"framing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", baseArgs, "both Content-Length and Transfer-Encoding"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", baseArgs, "Host"},
		{"body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100001\r\n\r\n", baseArgs, "exceeds 100000"},
		{"missing key", workedExample, []string{"--guid", testGUID, "--date", testDate}, "--key is required"},
		{"missing guid", workedExample, []string{"--key", testKey, "--date", testDate}, "--guid is required"},
		{"missing date", workedExample, []string{"--key", testKey, "--guid", testGUID}, "--date is required"},
		{"bad key hex", workedExample, []string{"--key", strings.Repeat("x", 64), "--guid", testGUID, "--date", testDate}, "not hexadecimal"},
		{"short key", workedExample, []string{"--key", "abcd", "--guid", testGUID, "--date", testDate}, "want 64 hex characters"},
		{"bad guid", workedExample, []string{"--key", testKey, "--guid", "not-a-guid", "--date", testDate}, `key guid "not-a-guid"`},
		{"bad date", workedExample, []string{"--key", testKey, "--guid", testGUID, "--date", "2025-04-23T12:00:00Z"}, "want RFC 1123"},
		{"unpadded day", workedExample, []string{"--key", testKey, "--guid", testGUID, "--date", "Wed, 3 Apr 2025 12:00:00 GMT"}, "two-digit day"},
		{"unknown flag", workedExample, append([]string{"--nope"}, baseArgs...), "flag provided but not defined"},
		{"stray argument", workedExample, append(append([]string(nil), baseArgs...), "file.txt"), "read from stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runSign(t, tt.stdin, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d; want 2 (stdout %q)", code, out)
			}
			if out != "" {
				t.Errorf("stdout = %q; want nothing on refusal", out)
			}
			if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tt.want) {
				t.Errorf("stderr = %q; want one line containing %q", errs, tt.want)
			}
			if strings.Contains(errs, testKey) || strings.Contains(errs, strings.Repeat("x", 64)) {
				t.Errorf("stderr echoes the key: %q", errs)
			}
		})
	}
}

// TestSignStrictTarget: `mspctl sign` refuses exactly the targets the
// proxy refuses before authorization (authz.CheckTarget, authorization.md
// I-24) and signs the targets of real clients.
func TestSignStrictTarget(t *testing.T) {
	request := func(method, target, host string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nMetadata: true\r\n\r\n"
	}
	for _, sp := range targettest.Spellings() {
		t.Run(sp.Note, func(t *testing.T) {
			code, out, errs := runSign(t, request("GET", sp.Target, "169.254.169.254"), baseArgs...)
			if !sp.Refused {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				return
			}
			want := "403 path-rejected: "
			if sp.Raw {
				want = "bad-request-line: "
			}
			if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, out, errs, want)
			}
		})
	}
	for _, l := range targettest.Legitimates() {
		t.Run(l.Source+" "+l.Target, func(t *testing.T) {
			code, out, errs := runSign(t, request(l.Method, l.Target, "168.63.129.16"), append([]string{"--root"}, baseArgs...)...)
			if code != 0 || !strings.HasPrefix(out, l.Method+" "+l.Target+" HTTP/1.1\r\n") {
				t.Errorf("exit %d: %s\n%q", code, errs, out)
			}
		})
	}
}
