package endorse

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// Params are the per-request inputs of the transformation.
type Params struct {
	// Endpoint is the service the request goes to, from the kernel's
	// original destination; only WireServer and HostGAPlugin have exempt
	// requests.
	Endpoint hostproto.Endpoint
	// IsRoot is the caller's elevation, from the kernel's caller record.
	IsRoot bool
	// Date is the x-ms-azure-host-date value (RFC 1123, host time).
	Date string
	// Signer signs the request; nil forwards it unsigned (no key latched).
	Signer *sign.Signer
}

// Result says what the transformation did.
type Result struct {
	// Exempt is true for the two requests that are never signed; their
	// body is streamed by Write.
	Exempt bool
	// Signed is true when an authorization header was appended.
	Signed bool
}

// Body limits of agent.md §5.4: a signed request's body is buffered for the
// MAC up to 100 KB; an exempt one may be up to 100 MB.
const (
	SignedBodyLimit = 100 * 1000
	ExemptBodyLimit = 100 * 1000 * 1000
)

// Exempt reports whether a request is forwarded unsigned with its body
// streamed: one of the two exempt requests (host-protocol.md §8.8), from
// root, to WireServer or HostGAPlugin (issue 15 item 2). Everything else
// is signed, with the 100 KB body limit.
func Exempt(p Params, method, target string) bool {
	return p.IsRoot && p.Endpoint.RootOnly() && hostproto.Exempt(method, target)
}

// BodyLimit returns the largest body accepted for a request.
func BodyLimit(p Params, method, target string) int64 {
	if Exempt(p, method, target) {
		return ExemptBodyLimit
	}
	return SignedBodyLimit
}

// Prepare is the streaming form of the transformation, used by the proxy
// and `mspctl sign` alike: it reads what the request needs from br and
// rewrites req in place. A signed request's body is read (growing as bytes
// arrive, at most SignedBodyLimit) and signed; an exempt request's body is
// left on br for Write to stream, and its framing headers are kept. Read
// errors are *rawhttp.Error values (400, 413).
func Prepare(req *rawhttp.Request, br *bufio.Reader, p Params) (Result, error) {
	if Exempt(p, req.Method, req.Target) {
		if req.ContentLength() > ExemptBodyLimit {
			return Result{}, &rawhttp.Error{Status: 413, Reason: rawhttp.ReasonBodyTooLarge, Msg: "exempt body exceeds 100 MB"}
		}
		return transform(req, p, true)
	}
	if err := req.ReadBody(br, SignedBodyLimit); err != nil {
		return Result{}, err
	}
	return transform(req, p, false)
}

// Write sends a prepared request to w: the head and a buffered body in one
// write, then an exempt body streamed from br as it arrives (a chunked one
// chunk by chunk). opt is passed to rawhttp's StreamBody. Write failures
// are *rawhttp.WriteError values when they happen while streaming.
func Write(w io.Writer, req *rawhttp.Request, br *bufio.Reader, res Result, opt rawhttp.StreamOptions) (int64, error) {
	bp := headPool.Get().(*[]byte)
	buf := req.AppendHead((*bp)[:0])
	if !res.Exempt {
		buf = append(buf, req.Body...)
	}
	n, err := w.Write(buf)
	if cap(buf) <= maxPooledHead {
		*bp = buf
		headPool.Put(bp)
	}
	if err != nil || !res.Exempt {
		return int64(n), err
	}
	m, err := req.StreamBody(w, br, ExemptBodyLimit, opt)
	return int64(n) + m, err
}

// maxPooledHead keeps one huge request from pinning its buffer.
const maxPooledHead = 128 << 10

var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Transform rewrites req, whose body was read with rawhttp's ReadBody, in
// place into the request to forward; a chunked body is de-chunked even
// when the request is exempt.
func Transform(req *rawhttp.Request, p Params) (Result, error) {
	return transform(req, p, false)
}

func transform(req *rawhttp.Request, p Params, streamed bool) (Result, error) {
	if err := checkAgentValue("date", p.Date); err != nil {
		return Result{}, err
	}
	if err := stripAndCollapse(req); err != nil {
		return Result{}, err
	}
	if !streamed {
		req.Dechunk()
	}
	req.Headers = append(req.Headers,
		rawhttp.Header{Name: hostproto.HeaderClaims, Value: hostproto.Claims(p.IsRoot)},
		rawhttp.Header{Name: hostproto.HeaderDate, Value: p.Date})
	res := Result{Exempt: Exempt(p, req.Method, req.Target)}
	if p.Signer != nil && !res.Exempt {
		auth := p.Signer.Authorization(req.Method, req.Target, req.Headers, req.Body)
		req.Headers = append(req.Headers, rawhttp.Header{Name: hostproto.HeaderAuthorization, Value: auth})
		res.Signed = true
	}
	return res, nil
}

// ReasonExpectationFailed answers an Expect header other than
// 100-continue (417).
const ReasonExpectationFailed = "expectation-failed"

// stripAndCollapse removes client x-ms-azure-host-* headers and consumed
// Expect headers, then keeps only the last copy of a repeated header, in
// place and in wire order.
func stripAndCollapse(req *rawhttp.Request) error {
	kept := req.Headers[:0]
	for _, h := range req.Headers {
		if isHostHeader(h.Name) {
			continue
		}
		if strings.EqualFold(h.Name, "Expect") {
			if !strings.EqualFold(h.Value, "100-continue") {
				return &rawhttp.Error{Status: 417, Reason: ReasonExpectationFailed, Msg: "Expect " + strconv.Quote(h.Value) + ": only 100-continue is supported"}
			}
			continue
		}
		kept = append(kept, h)
	}
	kept = keepLastCopies(kept)
	clear(req.Headers[len(kept):])
	req.Headers = kept
	return nil
}

// smallHeaderCount is how many headers are collapsed by pairwise
// comparison, without allocating; more (up to the 64 KiB header limit, some
// 16 000 one-letter headers) go through a map so that a hostile client
// cannot make the proxy spend quadratic time on one request.
const smallHeaderCount = 32

// keepLastCopies drops every header that a later one of the same name (any
// case) repeats, in place, keeping wire order.
func keepLastCopies(hs []rawhttp.Header) []rawhttp.Header {
	out := hs[:0]
	if len(hs) <= smallHeaderCount {
		for i, h := range hs {
			if !repeatedLater(hs[i+1:], h.Name) {
				out = append(out, h)
			}
		}
		return out
	}
	last := make(map[string]int, len(hs))
	for i, h := range hs {
		last[strings.ToLower(h.Name)] = i
	}
	for i, h := range hs {
		if last[strings.ToLower(h.Name)] == i {
			out = append(out, h)
		}
	}
	return out
}

func repeatedLater(rest []rawhttp.Header, name string) bool {
	for _, h := range rest {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// isHostHeader reports whether a header name starts with
// x-ms-azure-host- in any case, '_' standing for '-': servers that map
// header names to CGI-style variables (HTTP_X_MS_AZURE_HOST_CLAIMS) read
// x_ms_azure_host_claims as the agent's own header.
func isHostHeader(name string) bool {
	p := hostproto.HeaderPrefix
	if len(name) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c, w := name[i], p[i]
		switch {
		case w == '-':
			if c != '-' && c != '_' {
				return false
			}
		case c|0x20 != w: // w is a lower-case letter
			return false
		}
	}
	return true
}

// checkAgentValue refuses an agent header value that is empty or not
// visible ASCII (agent.md §5.2 step 11: 502).
func checkAgentValue(what, v string) error {
	if v == "" {
		return &rawhttp.Error{Status: 502, Reason: "bad-agent-header", Msg: what + " is empty"}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c > '~' {
			return &rawhttp.Error{Status: 502, Reason: "bad-agent-header", Msg: what + " contains a byte outside visible ASCII"}
		}
	}
	return nil
}
