package endorse

import (
	"strconv"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// Params are the per-request inputs of the transformation.
type Params struct {
	// IsRoot is the caller's elevation, from the kernel's caller record.
	IsRoot bool
	// Date is the x-ms-azure-host-date value (RFC 1123, host time).
	Date string
	// Signer signs the request; nil forwards it unsigned (no key latched).
	Signer *sign.Signer
}

// Result says what the transformation did.
type Result struct {
	// Exempt is true for the two requests that are never signed.
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

// BodyLimit returns the largest body accepted for a request.
func BodyLimit(method, target string) int64 {
	if hostproto.Exempt(method, target) {
		return ExemptBodyLimit
	}
	return SignedBodyLimit
}

// Transform rewrites req in place into the request to forward.
func Transform(req *rawhttp.Request, p Params) (Result, error) {
	if err := checkAgentValue("date", p.Date); err != nil {
		return Result{}, err
	}
	if err := stripAndCollapse(req); err != nil {
		return Result{}, err
	}
	req.Dechunk()
	req.Headers = append(req.Headers,
		rawhttp.Header{Name: hostproto.HeaderClaims, Value: hostproto.Claims(p.IsRoot)},
		rawhttp.Header{Name: hostproto.HeaderDate, Value: p.Date})
	res := Result{Exempt: hostproto.Exempt(req.Method, req.Target)}
	if p.Signer != nil && !res.Exempt {
		auth := p.Signer.Authorization(req.Method, req.Target, req.Headers, req.Body)
		req.Headers = append(req.Headers, rawhttp.Header{Name: hostproto.HeaderAuthorization, Value: auth})
		res.Signed = true
	}
	return res, nil
}

// stripAndCollapse removes client x-ms-azure-host-* headers and consumed
// Expect headers, then keeps only the last copy of a repeated header, in
// place and in wire order.
func stripAndCollapse(req *rawhttp.Request) error {
	kept := req.Headers[:0]
	for _, h := range req.Headers {
		if hasPrefixFold(h.Name, hostproto.HeaderPrefix) {
			continue
		}
		if strings.EqualFold(h.Name, "Expect") {
			if !strings.EqualFold(h.Value, "100-continue") {
				return &rawhttp.Error{Status: 417, Reason: "expectation-failed", Msg: "Expect " + strconv.Quote(h.Value) + ": only 100-continue is supported"}
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

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
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
