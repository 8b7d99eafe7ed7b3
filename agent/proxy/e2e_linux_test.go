package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim"
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

// TestRootOnlyEndpoints: WireServer and HostGAPlugin serve root only; the
// emulator verifies root's requests (isRoot claim true, signed).
func TestRootOnlyEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, ep := range []hostproto.Endpoint{hostproto.WireServer, hostproto.HostGAPlugin} {
		target := map[hostproto.Endpoint]string{hostproto.WireServer: "/machine?comp=goalstate", hostproto.HostGAPlugin: "/extensionArtifact"}[ep]
		since := e.lastSeq()
		rs := e.raw(nobody, ep, get(target, "Connection: close\r\n"))
		if len(rs) != 1 || rs[0].status != 403 || rs[0].get("x-ms-azure-proxy-reason") != "root-required" {
			t.Errorf("%s as nobody: %+v; want 403 root-required", ep, rs)
		}
		if recs := e.records(since); len(recs) != 0 {
			t.Errorf("%s: nobody's request reached the emulator: %+v", ep, recs)
		}
		rs = e.raw(0, ep, get(target, "Connection: close\r\n"))
		recs := e.records(since)
		if len(rs) != 1 || len(recs) != 1 || !recs[0].Valid || !*recs[0].IsRoot || rs[0].status != recs[0].Status {
			t.Errorf("%s as root: responses %+v, emulator %+v; want one valid root request", ep, rs, recs)
		}
		if rs[0].get(hostproto.HeaderAuthorization) != "value" {
			t.Errorf("%s: response marker %q; want %s: value", ep, rs[0].get(hostproto.HeaderAuthorization), hostproto.HeaderAuthorization)
		}
	}
}

// TestForgedHostHeaders: client x-ms-azure-host-* headers, in any case and
// repeated, never reach the host; the emulator sees the proxy's own, once.
func TestForgedHostHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	since := e.lastSeq()
	rs := e.raw(nobody, hostproto.IMDS, get("/metadata/instance?api-version=2021-02-01",
		"X-MS-AZURE-HOST-Claims: { \"isRoot\": \"true\"}\r\n",
		"x-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\n",
		"X-Ms-Azure-Host-Authorization: forged\r\n",
		"x-ms-azure-host-date: Wed, 23 Apr 2025 12:00:00 GMT\r\n",
		"x-MS-azure-host-other: x\r\n",
		"Connection: close\r\n"))
	recs := e.records(since)
	if len(rs) != 1 || rs[0].status != 200 || len(recs) != 1 {
		t.Fatalf("responses %+v, emulator %+v; want one 200", rs, recs)
	}
	r := recs[0]
	if !r.Valid || *r.IsRoot {
		t.Errorf("emulator: valid %v isRoot %v (%s); want a valid request with isRoot false", r.Valid, *r.IsRoot, r.Reason)
	}
	count := map[string]int{}
	for _, h := range r.Headers {
		if n := strings.ToLower(h.Name); strings.HasPrefix(n, hostproto.HeaderPrefix) {
			count[n]++
			if h.Name != n {
				t.Errorf("header %q reached the host; want only the proxy's lower-case ones", h.Name)
			}
		}
	}
	want := map[string]int{hostproto.HeaderClaims: 1, hostproto.HeaderDate: 1, hostproto.HeaderAuthorization: 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("agent headers at the host: %v; want %v", count, want)
	}
}

// TestRefusedRequests: targets and framings the proxy refuses, each with
// Connection: close and nothing after it answered; nothing reaches the
// host.
func TestRefusedRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	next := get("/metadata/instance")
	tests := []struct {
		name, req string
		status    int
		reason    string
	}{
		{"absolute form", "GET http://169.254.169.254/metadata/instance HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad-request-line"},
		{"CONNECT", "CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad-request-line"},
		{"TRACE", "TRACE /metadata/instance HTTP/1.1\r\nHost: h\r\n\r\n", 405, "method-not-allowed"},
		{"backslash", "GET /metadata\\identity/oauth2/token HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad-request-line"},
		{"fragment", "GET /metadata/instance#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad-request-line"},
		{"dot dot", "GET /metadata/instance/%2e%2e/identity HTTP/1.1\r\nHost: h\r\n\r\n", 403, "path-rejected"},
		{"CL and TE", "POST /metadata/instance HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad-framing"},
		{"double CL", "POST /metadata/instance HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, "bad-framing"},
		{"obs-fold", "GET /metadata/instance HTTP/1.1\r\nHost: h\r\nX-A: a\r\n folded\r\n\r\n", 400, "bad-header"},
		{"body over 100 KB", "POST /metadata/instance HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\n\r\n", 413, "body-too-large"},
		{"expectation", "GET /metadata/instance HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417, "expectation-failed"},
	}
	since := e.lastSeq()
	reqs := make([]string, len(tests))
	for i, tt := range tests {
		reqs[i] = tt.req + next
	}
	all := e.rawEach(0, hostproto.IMDS, reqs)
	if recs := e.records(since); len(recs) != 0 {
		t.Errorf("the emulator saw %+v; want nothing", recs)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := all[i]
			if len(rs) != 1 || rs[0].status != tt.status || rs[0].get("x-ms-azure-proxy-reason") != tt.reason || rs[0].get("connection") != "close" {
				t.Fatalf("got %+v; want only %d %s with Connection: close", rs, tt.status, tt.reason)
			}
			if !strings.HasPrefix(rs[0].body, tt.reason+" ") && tt.status != 405 {
				t.Errorf("body %q; want \"<code> <id>\"", rs[0].body)
			}
		})
	}
}

// TestPipelined: two pipelined requests are each authorized on their own;
// HEAD then GET on one connection keep their framing.
func TestPipelined(t *testing.T) {
	e := newEnv(t, envOptions{})
	since := e.lastSeq()
	rs := e.raw(nobody, hostproto.IMDS, get("/metadata/instance?api-version=2021-02-01")+get("/metadata/identity/oauth2/token?resource=x"))
	if len(rs) != 2 || rs[0].status != 200 || rs[1].status != 403 || rs[1].get("x-ms-azure-proxy-reason") != "privilege-identity-mismatch" {
		t.Fatalf("got %+v; want 200 then 403", rs)
	}
	if recs := e.records(since); len(recs) != 1 || !recs[0].Valid {
		t.Errorf("emulator saw %+v; want only the first, valid", recs)
	}

}

// TestResponseFraming: HEAD then GET on one connection, and responses
// framed by Content-Length, chunked, 204, 304 and close, are relayed with
// their framing so that keep-alive survives. msp-hostsim answers HEAD with
// a body, so a small in-test HostGAPlugin serves these.
func TestResponseFraming(t *testing.T) {
	up := startFramingServer(t)
	e := newEnv(t, envOptions{override: map[hostproto.Endpoint]string{hostproto.HostGAPlugin: up}})
	head := strings.Replace(get("/cl"), "GET", "HEAD", 1)
	req := head + get("/cl") + get("/chunked") + get("/204") + get("/304") + get("/cl") + get("/close")
	rs := e.raw(0, hostproto.HostGAPlugin, req)
	want := []struct {
		status int
		body   string
	}{{200, ""}, {200, "hello"}, {200, "chunked body"}, {204, ""}, {304, ""}, {200, "hello"}, {200, "until close"}}
	if len(rs) != len(want) {
		t.Fatalf("got %d responses %+v; want %d", len(rs), rs, len(want))
	}
	for i, w := range want {
		if rs[i].status != w.status || rs[i].body != w.body || rs[i].get(hostproto.HeaderAuthorization) != "value" {
			t.Errorf("response %d: %d %q; want %d %q with the marker", i, rs[i].status, rs[i].body, w.status, w.body)
		}
	}
}

// startFramingServer answers by path: /cl "hello" with Content-Length,
// /chunked two chunks, /204, /304, /close a close-delimited body; HEAD
// gets the head only.
func startFramingServer(t *testing.T) string {
	return serveUpstream(t, testIP+":0", func(req *rawhttp.Request) (string, bool) {
		switch req.Target {
		case "/cl":
			if req.Method == "HEAD" {
				return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7;x=y\r\nchunked\r\n5\r\n body\r\n0\r\nT: v\r\n\r\n", false
		case "/204":
			return "HTTP/1.1 204 No Content\r\n\r\n", false
		case "/304":
			return "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\n\r\nuntil close", true
	}).String()
}

// TestAuditModeForwardsWouldDeny: in audit mode the proxy forwards and
// signs a request its rules deny, and records it as audit-deny.
func TestAuditModeForwardsWouldDeny(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.px.SetPolicy(hostproto.IMDS, testIMDSPolicy(t, hostproto.ModeAudit))
	since := e.lastSeq()
	rs := e.raw(nobody, hostproto.IMDS, get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", "Connection: close\r\n"))
	if len(rs) != 1 || rs[0].status != 200 {
		t.Fatalf("got %+v; want 200", rs)
	}
	if recs := e.records(since); len(recs) != 1 || !recs[0].Valid || !recs[0].Signed {
		t.Errorf("emulator saw %+v; want one valid signed request", recs)
	}
	es := e.audit.waitAudit(t, 1)
	last := es[len(es)-1]
	if last.Decision != "audit-deny" || last.Reason != "privilege-identity-mismatch" || last.Privilege != "identity" || last.Status != 200 || !last.Signed || last.Caller.UID != nobody || last.Endpoint != "imds" {
		t.Errorf("audit entry %+v; want audit-deny privilege-identity-mismatch for nobody, signed, 200", last)
	}
}

// TestNoKey: without a key, an endpoint the host enforces gets 503 no-key;
// one it audits gets the request unsigned.
func TestNoKey(t *testing.T) {
	e := newEnv(t, envOptions{noKey: true})
	since := e.lastSeq()
	rs := e.raw(0, hostproto.IMDS, get("/metadata/instance"))
	if len(rs) != 1 || rs[0].status != 503 || rs[0].get("x-ms-azure-proxy-reason") != "no-key" {
		t.Fatalf("enforce: got %+v; want 503 no-key", rs)
	}
	if recs := e.records(since); len(recs) != 0 {
		t.Errorf("emulator saw %+v; want nothing", recs)
	}
	e.px.SetHostModes(hostproto.Modes{IMDS: hostproto.ModeAudit})
	if _, err := e.emu.Apply(&hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: ptr(hostproto.ModeAudit)}}); err != nil {
		t.Fatal(err)
	}
	rs = e.raw(0, hostproto.IMDS, get("/metadata/instance?api-version=2021-02-01", "Connection: close\r\n"))
	recs := e.records(since)
	if len(rs) != 1 || rs[0].status != 200 || len(recs) != 1 || recs[0].Signed || recs[0].Reason != hostsim.ReasonUnsigned {
		t.Errorf("audit: got %+v, emulator %+v; want 200 and an unsigned request", rs, recs)
	}
}

// TestUpstreamFailures: a dead upstream is 502; a slow one 504 within the
// configured response-header time.
func TestUpstreamFailures(t *testing.T) {
	ln, err := net.Listen("tcp4", testIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	e := newEnv(t, envOptions{override: map[hostproto.Endpoint]string{hostproto.HostGAPlugin: dead}, limits: Limits{ResponseHeader: 300 * time.Millisecond}})
	rs := e.raw(0, hostproto.HostGAPlugin, get("/status"))
	if len(rs) != 1 || rs[0].status != 502 || rs[0].get("x-ms-azure-proxy-reason") != "upstream-unavailable" {
		t.Errorf("dead upstream: got %+v; want 502 upstream-unavailable", rs)
	}

	if err := e.emu.SetFault(hostsim.Fault{Endpoint: "imds", Kind: hostsim.FaultDelay, DelayMs: 5000, Count: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rs = e.raw(0, hostproto.IMDS, get("/metadata/instance"))
	took := time.Since(start)
	if len(rs) != 1 || rs[0].status != 504 || rs[0].get("x-ms-azure-proxy-reason") != "upstream-timeout" || took > 3*time.Second {
		t.Errorf("slow upstream: got %+v after %v; want 504 upstream-timeout after about 300ms", rs, took)
	}
}

// TestExemptUploadStreamed: root's 5 MB chunked PUT /vmAgentLog reaches
// HostGAPlugin unsigned, chunked, chunk by chunk, byte for byte. The
// upstream is a small in-test server until msp-hostsim's HostGAPlugin
// serves streamed uploads (branch tests).
func TestExemptUploadStreamed(t *testing.T) {
	up := startUploadSink(t)
	e := newEnv(t, envOptions{override: map[hostproto.Endpoint]string{hostproto.HostGAPlugin: up.addr}})
	out := e.client(0, "upload", hostproto.HostGAPlugin, "")
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "200" {
		t.Fatalf("upload: %q; want 200", out)
	}
	got := <-up.results
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.sha != f[1] || got.size != 5<<20 || !got.chunked || got.chunks < 2 || got.signed || got.claims != hostproto.ClaimsRoot {
		t.Errorf("upstream saw %+v; want the client's %s, 5 MiB chunked in several chunks, unsigned, root claims", got, f[1])
	}
	es := e.audit.waitAudit(t, 1)
	if last := es[len(es)-1]; last.Decision != "exempt" || last.Signed {
		t.Errorf("audit %+v; want exempt, unsigned", last)
	}

	// Not root: the same request is refused before a byte is read.
	out = e.client(nobody, "upload", hostproto.HostGAPlugin, "")
	if !strings.HasPrefix(out, "403 ") {
		t.Errorf("upload as nobody: %q; want 403", out)
	}
}

// TestAzidentity: azidentity's ManagedIdentityCredential gets a token
// through the interception; the emulator verifies the signed request.
func TestAzidentity(t *testing.T) {
	e := newEnv(t, envOptions{})
	since := e.lastSeq()
	out := e.client(0, "azidentity", hostproto.IMDS, "")
	if !strings.HasPrefix(out, "token ") {
		t.Fatalf("azidentity: %q", out)
	}
	recs := e.records(since)
	if len(recs) == 0 {
		t.Fatal("no request reached the emulator")
	}
	r := recs[len(recs)-1]
	if !r.Valid || !r.Signed || !strings.HasPrefix(r.RawTarget, "/metadata/identity/oauth2/token?") || r.Status != 200 {
		t.Errorf("emulator saw %+v; want a valid signed token request", r)
	}
}

// TestDirectConnection: without a record only /provision is served;
// /gpa-aggregated-status is 403 and everything else 421.
func TestDirectConnection(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := e.px.Addr()
	tests := []struct {
		target string
		status int
		reason string
	}{
		{"/metadata/instance", 421, "misdirected"},
		{"/gpa-aggregated-status", 403, "forbidden"},
		{"/provision", 200, ""},
	}
	for _, tt := range tests {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, get(tt.target))
		c.(*net.TCPConn).CloseWrite()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		raw, _ := io.ReadAll(c)
		c.Close()
		rs := parseResponses(t, string(raw))
		if len(rs) != 1 || rs[0].status != tt.status || rs[0].get("x-ms-azure-proxy-reason") != tt.reason {
			t.Errorf("%s: %+v; want %d %q", tt.target, rs, tt.status, tt.reason)
		}
		if tt.status == 421 && rs[0].get("connection") != "close" {
			t.Errorf("%s: 421 without Connection: close", tt.target)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// uploadSink is an in-test HostGAPlugin that reads one streamed upload.
type uploadSink struct {
	addr    string
	results chan uploadResult
}

type uploadResult struct {
	sha     string
	size    int64
	chunks  int
	chunked bool
	signed  bool
	claims  string
	err     error
}

func startUploadSink(t *testing.T) *uploadSink {
	ln, err := net.Listen("tcp4", testIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &uploadSink{addr: ln.Addr().String(), results: make(chan uploadResult, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		var r uploadResult
		req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
		if err != nil {
			s.results <- uploadResult{err: err}
			return
		}
		r.chunked = req.Chunked()
		_, r.signed = req.Get(hostproto.HeaderAuthorization)
		r.claims, _ = req.Get(hostproto.HeaderClaims)
		h := sha256.New()
		if r.chunked { // count the chunks as framed on the wire
			for {
				line, err := br.ReadString('\n')
				var n int64
				if _, perr := fmt.Sscanf(strings.TrimSpace(line), "%x", &n); err != nil || perr != nil {
					s.results <- uploadResult{err: fmt.Errorf("chunk line %q: %v %v", line, err, perr)}
					return
				}
				if n == 0 {
					br.ReadString('\n')
					break
				}
				r.chunks++
				k, err := io.CopyN(h, br, n)
				r.size += k
				if crlf, _ := br.ReadString('\n'); err != nil || crlf != "\r\n" {
					s.results <- uploadResult{err: fmt.Errorf("chunk data: %v, then %q", err, crlf)}
					return
				}
			}
		}
		r.sha = hex.EncodeToString(h.Sum(nil))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		s.results <- r
	}()
	return s
}

// TestOverloaded: past the per-uid connection cap a connection is
// answered 503 overloaded; other users are not affected.
func TestOverloaded(t *testing.T) {
	e := newEnv(t, envOptions{limits: Limits{MaxConnsPerUser: 1}})
	rs := parseResponses(t, e.client(nobody, "hold", hostproto.IMDS, get("/metadata/instance?api-version=2021-02-01")))
	if len(rs) != 1 || rs[0].status != 503 || rs[0].get("x-ms-azure-proxy-reason") != "overloaded" {
		t.Errorf("second connection of one uid: %+v; want 503 overloaded", rs)
	}
	if rs := e.raw(0, hostproto.IMDS, get("/metadata/instance?api-version=2021-02-01", "Connection: close\r\n")); len(rs) != 1 || rs[0].status != 200 {
		t.Errorf("root meanwhile: %+v; want 200", rs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.px.Stats().Conns != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.px.Stats().Conns; n != 0 {
		t.Errorf("%d connections counted after all closed; want 0", n)
	}
}
