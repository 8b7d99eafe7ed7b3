package attack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/authz/targettest"
	"github.com/mspguest/msp/agent/hostproto"
)

// smuggled is the marker of every request hidden in another's body: the
// host must never record a target containing it.
const smuggled = "/smuggled"

// testSmuggling: framing attacks on one connection, each followed by a
// legitimate request. The agent refuses the ambiguous ones (and closes)
// or handles the legal ones; the host never records a smuggled request,
// never reads an unreadable one, and sees the follow-up exactly once,
// signed, when the client got an answer to it.
func testSmuggling(t *testing.T, s *suite) {
	post := func(name string, headers, body string) string {
		return "POST " + marker(name) + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n" + headers + "\r\n" + body
	}
	hidden := "GET " + smuggled + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n\r\n"
	chunkedHidden := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
	tests := []struct {
		name   string
		req    string
		status int    // the first answer's status
		reason string // and reason; "" for the host's answer
		kept   bool   // the follow-up is answered
	}{
		{"CL.TE", post("clte", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", 5+len(hidden)), "0\r\n\r\n"+hidden), 400, "bad-framing", false},
		{"TE.CL", post("tecl", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", chunkedHidden), 400, "bad-framing", false},
		{"duplicate CL, same value", post("dupcl same", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400, "bad-framing", false},
		{"duplicate CL, different values", post("dupcl diff", "Content-Length: 5\r\nContent-Length: "+fmt.Sprint(5+len(hidden))+"\r\n", "hello"+hidden), 400, "bad-framing", false},
		{"CL list", post("cl list", "Content-Length: 5, 5\r\n", "hello"), 400, "bad-framing", false},
		{"CL with sign", post("cl plus", "Content-Length: +5\r\n", "hello"), 400, "bad-framing", false},
		{"CL negative", post("cl neg", "Content-Length: -1\r\n", hidden), 400, "bad-framing", false},
		{"CL overflow", post("cl overflow", "Content-Length: 18446744073709551621\r\n", "hello"), 400, "bad-framing", false},
		{"CL leading zeros", post("cl zeros", "Content-Length: 0005\r\n", "hello"), 0, "", true},
		{"chunk size overflow", post("chunk overflow", "Transfer-Encoding: chunked\r\n", "10000000000000005\r\nhello\r\n0\r\n\r\n"+hidden), 400, "bad-body", false},
		{"chunk size leading zeros", post("chunk zeros", "Transfer-Encoding: chunked\r\n", "00000005\r\nhello\r\n0\r\n\r\n"), 0, "", true},
		{"chunk size many leading zeros", post("chunk many zeros", "Transfer-Encoding: chunked\r\n", strings.Repeat("0", 4096)+"5\r\nhello\r\n0\r\n\r\n"), 400, "bad-body", false},
		{"chunk size 0x prefix", post("chunk 0x", "Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"), 400, "bad-body", false},
		{"chunk size negative", post("chunk neg", "Transfer-Encoding: chunked\r\n", "-5\r\nhello\r\n0\r\n\r\n"), 400, "bad-body", false},
		{"chunk extension, legal", post("chunk ext", "Transfer-Encoding: chunked\r\n", "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n"), 0, "", true},
		{"chunk extension, 4000 bytes", post("chunk ext 4000", "Transfer-Encoding: chunked\r\n", "5;x="+strings.Repeat("a", 4000)+"\r\nhello\r\n0\r\n\r\n"), 0, "", true},
		{"chunk extensions over 16 KiB in all", post("chunk ext total", "Transfer-Encoding: chunked\r\n", strings.Repeat("1;x="+strings.Repeat("a", 4000)+"\r\nh\r\n", 5)+"0\r\n\r\n"), 400, "bad-body", false},
		{"chunk extension, huge", post("chunk ext huge", "Transfer-Encoding: chunked\r\n", "5;x="+strings.Repeat("a", 64<<10)+"\r\nhello\r\n0\r\n\r\n"), 400, "bad-body", false},
		{"chunk data longer than its size", post("chunk long", "Transfer-Encoding: chunked\r\n", "5\r\nhello"+hidden+"\r\n0\r\n\r\n"), 400, "bad-body", false},
		// RFC 9112 §2.2 lets a recipient take a bare LF as a line end; the
		// agent does, and forwards what it read re-framed (Content-Length).
		{"bare LF in chunked framing", post("chunk lf", "Transfer-Encoding: chunked\r\n", "5\nhello\n0\n\n"), 0, "", true},
		{"obs-fold", "GET " + marker("obs-fold") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n", 400, "bad-header", false},
		{"NUL in a header value", "GET " + marker("nul") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nX-A: a\x00b\r\n\r\n", 400, "bad-header", false},
		{"CR in a header value", "GET " + marker("cr") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nX-A: a\rContent-Length: 5\r\n\r\n", 400, "bad-header", false},
		{"LF in a header value", "GET " + marker("lf") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nX-A: a\nContent-Length: " + fmt.Sprint(len(hidden)) + "\r\n\r\n" + hidden, 0, "", true},
		{"space before the colon", post("space colon", "Content-Length : "+fmt.Sprint(len(hidden))+"\r\n", hidden), 400, "bad-header", false},
		{"TE chunked, identity", post("te chunked identity", "Transfer-Encoding: chunked, identity\r\n", chunkedHidden), 400, "bad-framing", false},
		{"TE identity, chunked", post("te identity chunked", "Transfer-Encoding: identity, chunked\r\n", chunkedHidden), 400, "bad-framing", false},
		{"TE leading space", post("te space", "Transfer-Encoding:  chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 0, "", true},
		{"TE Chunked", post("te case", "Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 0, "", true},
		{"TE xchunked", post("te xchunked", "Transfer-Encoding: xchunked\r\n", chunkedHidden), 400, "bad-framing", false},
		{"TE chunked twice", post("te twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunkedHidden), 400, "bad-framing", false},
		{"TE tab", post("te tab", "Transfer-Encoding:\tchunked\t\r\n", "5\r\nhello\r\n0\r\n\r\n"), 0, "", true},
		{"TE vertical tab", post("te vt", "Transfer-Encoding: \x0bchunked\r\n", chunkedHidden), 400, "bad-header", false},
		{"TE in HTTP/1.0", "POST " + marker("te 1.0") + " HTTP/1.0\r\nHost: h\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 400, "bad-framing", false},
		// A refused request's body is drained or the connection closed:
		// never read as the next request.
		// The agent closes after every refusal, even a bodiless one.
		{"denied, no body", get(token), 403, "privilege-identity-mismatch", false},
		{"denied, body hides a request", "POST " + token + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nContent-Length: " + fmt.Sprint(len(hidden)) + "\r\n\r\n" + hidden, 403, "privilege-identity-mismatch", false},
		{"denied, chunked body hides a request", "POST " + token + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 403, "privilege-identity-mismatch", false},
		{"denied, Expect 100-continue, body sent anyway", "POST " + token + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nExpect: 100-continue\r\nContent-Length: " + fmt.Sprint(len(hidden)) + "\r\n\r\n" + hidden, 403, "privilege-identity-mismatch", false},
		{"path rejected, body hides a request", "POST /metadata/instance/%2e%2e/identity HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nContent-Length: " + fmt.Sprint(len(hidden)) + "\r\n\r\n" + hidden, 403, "path-rejected", false},
		{"body over the limit hides a request", post("too large", "Content-Length: 100001\r\n", hidden), 413, "body-too-large", false},
		{"GET with a body", "GET " + marker("get body") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nContent-Length: " + fmt.Sprint(len(hidden)) + "\r\n\r\n" + hidden, 0, "", true},
	}
	before := s.seq()
	exs := make([]exchange, len(tests))
	for i, tt := range tests {
		exs[i] = ex(s.imds, tt.req+get(marker("after "+tt.name), "Connection: close\r\n"))
	}
	outs := s.raw(t, placement{uid: nobody}, exs...)
	recs := s.since(before)
	for _, r := range recs {
		if strings.Contains(r.RawTarget, smuggled) || r.Class == "unreadable" {
			t.Errorf("the host recorded %s %q (class %s, reason %s): smuggled or desynchronised", r.Method, r.RawTarget, r.Class, r.Reason)
		}
	}
	for i, tt := range tests {
		o := outs[i]
		t.Run(tt.name, func(t *testing.T) {
			rs, rest := parseResponses(o.Data)
			if len(rs) == 0 || o.TimedOut {
				t.Fatalf("outcome %+v; want an answer and the connection closed", o)
			}
			first := rs[0]
			t.Logf("%d %s; %d responses; closed %v", first.Status, first.reason(), len(rs), o.Closed)
			if tt.status != 0 && (first.Status != tt.status || first.reason() != tt.reason) {
				t.Errorf("first answer %d %q; want %d %q", first.Status, first.reason(), tt.status, tt.reason)
			}
			if tt.status == 0 && first.reason() != "" {
				t.Errorf("first answer %d %q; want it handled (the host's answer)", first.Status, first.reason())
			}
			if first.Status >= 400 && first.reason() != "" && first.get("connection") != "close" {
				t.Errorf("refusal without Connection: close: %+v", first.Headers)
			}
			if len(rs) > 2 || rest != "" {
				t.Errorf("%d responses, rest %q; want at most the two requests' answers", len(rs), rest)
			}
			follow := marker("after " + tt.name)
			n := 0
			for _, r := range recs {
				if r.RawTarget == follow {
					n++
					if !r.Signed || !r.Valid {
						t.Errorf("the follow-up reached the host unsigned or invalid: %+v", r)
					}
				}
			}
			switch {
			case tt.kept && (len(rs) != 2 || rs[1].Status != 200 || n != 1):
				t.Errorf("follow-up: %d responses, host saw it %d times; want answered 200 and seen once", len(rs), n)
			case !tt.kept && (len(rs) != 1 || n != 0):
				t.Errorf("follow-up after a refusal: %d responses, host saw it %d times; want neither", len(rs), n)
			}
			// What the host saw of the attack request itself: signed, and
			// its body exactly the legal one.
			for _, r := range recs {
				if strings.HasPrefix(tt.req[strings.Index(tt.req, " ")+1:], r.RawTarget+" ") && r.RawTarget != follow {
					if tt.status != 0 {
						t.Errorf("a refused request reached the host: %+v", r)
					}
					if !r.Signed || !r.Valid {
						t.Errorf("the attack request reached the host unsigned or invalid: %+v", r)
					}
					want := 5 // hello
					if strings.HasSuffix(tt.req, hidden) {
						want = len(hidden) // carried as a body, not a request
					}
					if r.BodyLength != want {
						t.Errorf("host body length %d; want %d", r.BodyLength, want)
					}
				}
			}
		})
	}
}

// testPathConfusion: every spelling of authz/targettest aimed at
// /metadata/identity, sent by uid 65534 whom the policy denies it, is
// refused by the agent; the host records none of them.
func testPathConfusion(t *testing.T, s *suite) {
	sp := targettest.Spellings()
	exs := make([]exchange, len(sp))
	for i, c := range sp {
		exs[i] = ex(s.imds, "GET "+c.Target+" HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nConnection: close\r\n\r\n")
	}
	before := s.seq()
	outs := s.raw(t, placement{uid: nobody}, exs...)
	for _, r := range s.since(before) {
		t.Errorf("the host recorded %s %q from the denied user (class %s)", r.Method, r.RawTarget, r.Class)
	}
	counts := map[string]int{}
	for i, c := range sp {
		rs, _ := parseResponses(outs[i].Data)
		status, reason := 403, "privilege-identity-mismatch"
		if c.Refused {
			status, reason = 403, "path-rejected"
		}
		if c.Raw {
			status, reason = 400, "bad-request-line"
		}
		if len(rs) != 1 || rs[0].Status != status || rs[0].reason() != reason {
			t.Errorf("%s (%q): %+v; want %d %s", c.Note, c.Target, rs, status, reason)
			continue
		}
		counts[fmt.Sprintf("%d %s", status, reason)]++
	}
	t.Logf("%d spellings: %v", len(sp), counts)
	// The legitimate spelling still works for the named user.
	if r := s.h.Curl(0, "GET", s.h.URL(hostproto.IMDS, token)); r.Status != 200 {
		t.Errorf("root to %s: %+v; want 200", token, r)
	}
}

// testForgedHostHeaders: x-ms-azure-host-* headers from the client, in
// any case, repeated, in trailers or hidden in other headers' values,
// never reach the host as such; the host sees the agent's three, once
// each, and the claims of the real caller.
func testForgedHostHeaders(t *testing.T, s *suite) {
	forged := "{\"isRoot\": true, \"forged\": 1}"
	auth := "Azure-HMAC-SHA256 00000000-0000-0000-0000-000000000000 forged"
	tests := []struct {
		name, req string
		status    int
	}{
		{"every case and repeated", get(marker("forged case"),
			"X-MS-AZURE-HOST-CLAIMS: "+forged+"\r\n", "x-ms-azure-host-claims: "+forged+"\r\n", "X-Ms-Azure-Host-Authorization: "+auth+"\r\n",
			"x-ms-azure-host-date: Wed, 23 Apr 2025 12:00:00 GMT\r\n", "x-MS-azure-HOST-other: forged\r\n", "Connection: close\r\n"), 200},
		{"underscores for dashes", get(marker("forged underscores"), "x_ms_azure_host_claims: "+forged+"\r\n", "X-MS_AZURE-HOST_AUTHORIZATION: "+auth+"\r\n", "Connection: close\r\n"), 200},
		{"empty values", get(marker("forged empty"), "x-ms-azure-host-claims:\r\n", "x-ms-azure-host-authorization: \r\n", "Connection: close\r\n"), 200},
		{"in a value", get(marker("forged in value"), "X-A: a\r\n", "X-B: b, x-ms-azure-host-claims: forged\r\n", "Connection: close\r\n"), 200},
		{"folded", get(marker("forged folded"), "X-A: a\r\n x-ms-azure-host-claims: "+forged+"\r\n", "Connection: close\r\n"), 400},
		{"space before colon", get(marker("forged space"), "x-ms-azure-host-claims : "+forged+"\r\n", "Connection: close\r\n"), 400},
		{"in a chunked trailer", "POST " + marker("forged trailer") + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-ms-azure-host-claims: " + forged + "\r\nx-ms-azure-host-authorization: " + auth + "\r\n\r\n", 405}, // the host's answer to POST
	}
	var exs []exchange
	for _, tt := range tests {
		exs = append(exs, ex(s.imds, tt.req))
	}
	before := s.seq()
	outs := s.raw(t, placement{uid: nobody}, exs...)
	recs := s.since(before)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, _ := parseResponses(outs[i].Data)
			if len(rs) != 1 || rs[0].Status != tt.status {
				t.Fatalf("responses %+v; want one %d", rs, tt.status)
			}
			target := tt.req[strings.Index(tt.req, " ")+1 : strings.Index(tt.req, " HTTP/1.1")]
			n := 0
			for _, r := range recs {
				if r.RawTarget != target {
					continue
				}
				n++
				if !r.Valid || r.IsRoot == nil || *r.IsRoot {
					t.Errorf("host: valid %v isRoot %v (%s); want valid, isRoot false", r.Valid, r.IsRoot, r.Reason)
				}
				count := map[string]int{}
				for _, h := range r.Headers {
					// '_' read as '-', as CGI-style servers do.
					if ln := strings.ReplaceAll(strings.ToLower(h.Name), "_", "-"); strings.HasPrefix(ln, hostproto.HeaderPrefix) {
						count[ln]++
						if h.Name != ln || strings.Contains(h.Value, "forged") {
							t.Errorf("header %q: %q reached the host", h.Name, h.Value)
						}
					}
				}
				want := map[string]int{hostproto.HeaderClaims: 1, hostproto.HeaderDate: 1, hostproto.HeaderAuthorization: 1}
				if fmt.Sprint(count) != fmt.Sprint(want) {
					t.Errorf("x-ms-azure-host-* at the host: %v; want %v", count, want)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.status != 400]; n != want {
				t.Errorf("the host recorded the request %d times; want %d", n, want)
			}
		})
	}
}
