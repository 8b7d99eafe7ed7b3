package endorse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

const (
	testKey  = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"
	testGUID = "e3882f98-da8d-4410-8394-06c23462781c"
	testDate = "Wed, 23 Apr 2025 12:00:00 GMT"
)

func parse(t *testing.T, raw string) *rawhttp.Request {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := req.ReadBody(br, 1<<20); err != nil {
		t.Fatal(err)
	}
	return req
}

func names(req *rawhttp.Request) string {
	var n []string
	for _, h := range req.Headers {
		n = append(n, h.Name+"="+h.Value)
	}
	return strings.Join(n, "|")
}

func TestTransform(t *testing.T) {
	signer, err := sign.NewSigner(testKey, testGUID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		raw     string
		root    bool
		ep      hostproto.Endpoint
		signer  *sign.Signer
		headers string // expected header list before the authorization header
		body    string
		res     Result
	}{
		{
			name:    "client host headers stripped in any case",
			raw:     "GET /metadata/instance HTTP/1.1\r\nHost: h\r\nX-MS-AZURE-HOST-Claims: { \"isRoot\": \"true\"}\r\nx-ms-azure-host-date: forged\r\nX-Ms-Azure-Host-Authorization: forged\r\nx-ms-azure-host-anything: x\r\nMetadata: true\r\n\r\n",
			signer:  signer,
			headers: `Host=h|Metadata=true|x-ms-azure-host-claims={ "isRoot": "false"}|x-ms-azure-host-date=` + testDate,
			res:     Result{Signed: true},
		},
		{
			name:    "duplicates collapse to the last copy in its place",
			raw:     "GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2\r\nAccept: */*\r\nX-A: 3\r\n\r\n",
			root:    true,
			signer:  signer,
			headers: `Host=h|Accept=*/*|X-A=3|x-ms-azure-host-claims={ "isRoot": "true"}|x-ms-azure-host-date=` + testDate,
			res:     Result{Signed: true},
		},
		{
			name:    "chunked body forwarded with content-length in place",
			raw:     "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			signer:  signer,
			headers: `Host=h|Content-Length=5|Content-Type=text/plain|x-ms-azure-host-claims={ "isRoot": "false"}|x-ms-azure-host-date=` + testDate,
			body:    "abcde",
			res:     Result{Signed: true},
		},
		{
			name:    "expect 100-continue consumed",
			raw:     "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nz",
			signer:  signer,
			headers: `Host=h|Content-Length=1|x-ms-azure-host-claims={ "isRoot": "false"}|x-ms-azure-host-date=` + testDate,
			body:    "z",
			res:     Result{Signed: true},
		},
		{
			name:    "exempt request from a non-root caller is signed",
			raw:     "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			ep:      hostproto.HostGAPlugin,
			signer:  signer,
			headers: `Host=h|Content-Length=0|x-ms-azure-host-claims={ "isRoot": "false"}|x-ms-azure-host-date=` + testDate,
			res:     Result{Signed: true},
		},
		{
			name:    "exempt request to IMDS is signed",
			raw:     "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			root:    true,
			ep:      hostproto.IMDS,
			signer:  signer,
			headers: `Host=h|Content-Length=0|x-ms-azure-host-claims={ "isRoot": "true"}|x-ms-azure-host-date=` + testDate,
			res:     Result{Signed: true},
		},
		{
			name:    "exempt telemetry is not signed",
			raw:     "POST /machine/?comp=TelemetryData HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nx-ms-azure-host-authorization: client\r\n\r\n<a",
			ep:      hostproto.WireServer,
			root:    true,
			signer:  signer,
			headers: `Host=h|Content-Length=2|x-ms-azure-host-claims={ "isRoot": "true"}|x-ms-azure-host-date=` + testDate,
			body:    "<a",
			res:     Result{Exempt: true},
		},
		{
			name:    "exempt vmagentlog is not signed",
			raw:     "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			ep:      hostproto.HostGAPlugin,
			root:    true,
			signer:  signer,
			headers: `Host=h|Content-Length=0|x-ms-azure-host-claims={ "isRoot": "true"}|x-ms-azure-host-date=` + testDate,
			res:     Result{Exempt: true},
		},
		{
			name:    "no key forwards unsigned, forged host headers still stripped",
			raw:     "GET / HTTP/1.1\r\nHost: h\r\nX-Ms-Azure-Host-Authorization: Azure-HMAC-SHA256 " + testGUID + " forged\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nX-MS-AZURE-HOST-DATE: forged\r\n\r\n",
			headers: `Host=h|x-ms-azure-host-claims={ "isRoot": "false"}|x-ms-azure-host-date=` + testDate,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := parse(t, tt.raw)
			res, err := Transform(req, Params{Endpoint: tt.ep, IsRoot: tt.root, Date: testDate, Signer: tt.signer})
			if err != nil {
				t.Fatal(err)
			}
			if res != tt.res {
				t.Errorf("result = %+v; want %+v", res, tt.res)
			}
			hs := req.Headers
			if res.Signed {
				last := hs[len(hs)-1]
				if last.Name != hostproto.HeaderAuthorization {
					t.Fatalf("last header = %q; want the authorization header", last.Name)
				}
				// The host's view: verify over exactly what is forwarded.
				var wire bytes.Buffer
				req.WriteTo(&wire)
				fwd := parse(t, wire.String())
				if err := signer.Verify(fwd.Method, fwd.Target, fwd.Headers, fwd.Body); err != nil {
					t.Errorf("forwarded request does not verify: %v\n%s", err, wire.String())
				}
				hs = hs[:len(hs)-1]
			}
			got := names(&rawhttp.Request{Headers: hs})
			if got != tt.headers {
				t.Errorf("headers:\n got %s\nwant %s", got, tt.headers)
			}
			if string(req.Body) != tt.body {
				t.Errorf("body = %q; want %q", req.Body, tt.body)
			}
		})
	}
}

func TestTransformRefuses(t *testing.T) {
	req := parse(t, "GET / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n")
	_, err := Transform(req, Params{Date: testDate})
	var e *rawhttp.Error
	if !errors.As(err, &e) || e.Status != 417 {
		t.Fatalf("got %v; want 417", err)
	}
	for _, date := range []string{"", "Wed,\n23 Apr"} {
		req := parse(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, err := Transform(req, Params{Date: date}); !errors.As(err, &e) || e.Status != 502 {
			t.Errorf("date %q: got %v; want 502", date, err)
		}
	}
}

// TestCollapseManyHeaders: past smallHeaderCount duplicates are collapsed
// through a map, with the same result as the pairwise path.
func TestCollapseManyHeaders(t *testing.T) {
	var raw strings.Builder
	raw.WriteString("GET / HTTP/1.1\r\nHost: h\r\n")
	for i := 0; i < 3*smallHeaderCount; i++ {
		fmt.Fprintf(&raw, "X-%d: a\r\nx-%d: b\r\n", i%smallHeaderCount, i%smallHeaderCount)
	}
	raw.WriteString("\r\n")
	req := parse(t, raw.String())
	if _, err := Transform(req, Params{Date: testDate}); err != nil {
		t.Fatal(err)
	}
	hs := req.Headers[1 : len(req.Headers)-2] // between Host and the agent's two headers
	if len(hs) != smallHeaderCount {
		t.Fatalf("%d headers kept; want %d", len(hs), smallHeaderCount)
	}
	for i, h := range hs {
		if want := fmt.Sprintf("x-%d", i); h.Name != want || h.Value != "b" {
			t.Errorf("header %d = %s: %s; want %s: b (the last copy, in its place)", i, h.Name, h.Value, want)
		}
	}
}

// TestPrepareWrite is the streaming form: a signed request is buffered,
// de-chunked and signed; an exempt one keeps its framing and its body is
// streamed chunk by chunk; the next pipelined request is left on the
// reader.
func TestPrepareWrite(t *testing.T) {
	signer, err := sign.NewSigner(testKey, testGUID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string
		p    Params
		want string // forwarded bytes; "SIG" stands for the authorization value
		res  Result
	}{
		{
			name: "signed chunked body is de-chunked",
			raw:  "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nab\r\n0\r\n\r\n",
			p:    Params{Endpoint: hostproto.IMDS, Signer: signer},
			want: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nx-ms-azure-host-claims: { \"isRoot\": \"false\"}\r\nx-ms-azure-host-date: " + testDate + "\r\nx-ms-azure-host-authorization: SIG\r\n\r\nab",
			res:  Result{Signed: true},
		},
		{
			name: "exempt chunked body is streamed chunked",
			raw:  "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nab\r\n1\r\nc\r\n0\r\nT: x\r\n\r\n",
			p:    Params{Endpoint: hostproto.HostGAPlugin, IsRoot: true, Signer: signer},
			want: "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nx-ms-azure-host-date: " + testDate + "\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
			res:  Result{Exempt: true},
		},
		{
			name: "exempt content-length body is streamed as is",
			raw:  "POST /machine/?comp=telemetrydata HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
			p:    Params{Endpoint: hostproto.WireServer, IsRoot: true},
			want: "POST /machine/?comp=telemetrydata HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nx-ms-azure-host-claims: { \"isRoot\": \"true\"}\r\nx-ms-azure-host-date: " + testDate + "\r\n\r\nabc",
			res:  Result{Exempt: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw + "GET /next HTTP/1.1\r\n"))
			req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			tt.p.Date = testDate
			res, err := Prepare(req, br, tt.p)
			if err != nil || res != tt.res {
				t.Fatalf("Prepare = %+v, %v; want %+v", res, err, tt.res)
			}
			var out bytes.Buffer
			if _, err := Write(&out, req, br, res, rawhttp.StreamOptions{}); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if res.Signed {
				auth, _ := req.Get(hostproto.HeaderAuthorization)
				got = strings.Replace(got, auth, "SIG", 1)
				fwd := parse(t, out.String())
				if err := signer.Verify(fwd.Method, fwd.Target, fwd.Headers, fwd.Body); err != nil {
					t.Errorf("forwarded request does not verify: %v", err)
				}
			}
			if got != tt.want {
				t.Errorf("forwarded:\n%q\nwant\n%q", got, tt.want)
			}
			if rest, _ := io.ReadAll(br); string(rest) != "GET /next HTTP/1.1\r\n" {
				t.Errorf("left %q; want the next request", rest)
			}
		})
	}
}

func TestPrepareLimits(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		p    Params
	}{
		{"signed body over 100 KB", "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\n\r\n", Params{Endpoint: hostproto.IMDS}},
		{"non-root log upload is held to 100 KB", "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\n\r\n", Params{Endpoint: hostproto.HostGAPlugin}},
		{"exempt body over 100 MB", "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 100000001\r\n\r\n", Params{Endpoint: hostproto.HostGAPlugin, IsRoot: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			tt.p.Date = testDate
			_, err = Prepare(req, br, tt.p)
			if !errors.Is(err, rawhttp.ErrBodyTooLarge) {
				t.Errorf("Prepare = %v; want 413 body-too-large", err)
			}
		})
	}
}
