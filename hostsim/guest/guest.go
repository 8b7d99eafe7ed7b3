package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// Guest builds and sends requests as the agent would.
type Guest struct {
	// Signer signs requests; nil sends them unsigned.
	Signer *sign.Signer
	// IsRoot is the isRoot claim; NoClaims leaves the claims header out.
	IsRoot   bool
	NoClaims bool
	// Date overrides x-ms-azure-host-date; zero uses the local clock and
	// NoDate leaves the header out.
	Date   time.Time
	NoDate bool
	// Timeout bounds one exchange; 0 means 10 s.
	Timeout time.Duration
}

// Request builds method target with Host host, the body, Content-Length,
// the extra headers, the claims and date headers and, with a signer, the
// authorization header computed over exactly that header list.
func (g *Guest) Request(method, target, host string, body []byte, extra ...rawhttp.Header) *rawhttp.Request {
	r := &rawhttp.Request{Method: method, Target: target, Proto: "HTTP/1.1", Body: body}
	r.Headers = append(r.Headers, rawhttp.Header{Name: "Host", Value: host})
	r.Headers = append(r.Headers, extra...)
	chunked := false
	for _, h := range extra {
		chunked = chunked || (h.Name == "Transfer-Encoding")
	}
	if !chunked {
		r.Headers = append(r.Headers, rawhttp.Header{Name: "Content-Length", Value: strconv.Itoa(len(body))})
	}
	if !g.NoClaims {
		r.Headers = append(r.Headers, rawhttp.Header{Name: hostproto.HeaderClaims, Value: hostproto.Claims(g.IsRoot)})
	}
	if !g.NoDate {
		d := g.Date
		if d.IsZero() {
			d = time.Now()
		}
		r.Headers = append(r.Headers, rawhttp.Header{Name: hostproto.HeaderDate, Value: d.UTC().Format(hostproto.DateLayout)})
	}
	if g.Signer != nil {
		auth := g.Signer.Authorization(r.Method, r.Target, r.Headers, r.Body)
		r.Headers = append(r.Headers, rawhttp.Header{Name: sign.AuthorizationHeader, Value: auth})
	}
	return r
}

// Response is a read answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Close is set when the server announced Connection: close (net/http
	// moves that header out of Header).
	Close bool
}

// Do writes req to addr over a new connection and reads the answer. A
// chunked request (Transfer-Encoding header present) has its body sent as
// one chunk. addr must be loopback.
func (g *Guest) Do(addr string, req *rawhttp.Request) (*Response, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return nil, fmt.Errorf("guest: address %q: want a loopback ip:port", addr)
	}
	to := g.Timeout
	if to == 0 {
		to = 10 * time.Second
	}
	c, err := net.DialTimeout("tcp", addr, to)
	if err != nil {
		return nil, fmt.Errorf("guest: dial %s: %w", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(to))
	var wire bytes.Buffer
	if hasChunked(req) {
		head := *req
		head.Body = nil
		head.WriteTo(&wire)
		if len(req.Body) > 0 {
			fmt.Fprintf(&wire, "%x\r\n%s\r\n", len(req.Body), req.Body)
		}
		wire.WriteString("0\r\n\r\n")
	} else {
		req.WriteTo(&wire)
	}
	if _, err := c.Write(wire.Bytes()); err != nil {
		return nil, fmt.Errorf("guest: write: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: req.Method})
	if err != nil {
		return nil, fmt.Errorf("guest: read answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Close: resp.Close}, fmt.Errorf("guest: read body: %w", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Close: resp.Close}, nil
}

func hasChunked(r *rawhttp.Request) bool {
	v, ok := r.Get("Transfer-Encoding")
	return ok && v == "chunked"
}

// WireServerHost is the Host header of WireServer requests.
const WireServerHost = "168.63.129.16"

// AcquireKey sends POST /secure-channel/key (signed if g holds a key) and
// parses the Key.
func (g *Guest) AcquireKey(wireServerAddr string) (*hostproto.Key, error) {
	body := []byte(`{"authorizationScheme": "Azure-HMAC-SHA256"}`)
	req := g.Request("POST", "/secure-channel/key", WireServerHost, body, rawhttp.Header{Name: "Content-Type", Value: "application/json"})
	resp, err := g.Do(wireServerAddr, req)
	if err != nil {
		return nil, err
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("guest: acquire key: status %d: %s", resp.Status, resp.Body)
	}
	return hostproto.ParseKey(resp.Body)
}

// Attest sends the attestation of k signed with k and returns the status.
func (g *Guest) Attest(wireServerAddr string, k *hostproto.Key) (int, error) {
	s, err := sign.NewSigner(k.Key, k.GUID)
	if err != nil {
		return 0, err
	}
	a := *g
	a.Signer = s
	resp, err := a.Do(wireServerAddr, a.Request("POST", "/secure-channel/key/"+k.GUID+"/key-attestation", WireServerHost, nil))
	if err != nil {
		return 0, err
	}
	return resp.Status, nil
}

// Latch acquires and attests a key and makes it g's signer.
func (g *Guest) Latch(wireServerAddr string) (*hostproto.Key, error) {
	k, err := g.AcquireKey(wireServerAddr)
	if err != nil {
		return nil, err
	}
	status, err := g.Attest(wireServerAddr, k)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("guest: attest key %s: status %d", k.GUID, status)
	}
	if g.Signer, err = sign.NewSigner(k.Key, k.GUID); err != nil {
		return nil, err
	}
	return k, nil
}

// Status fetches and parses GET /secure-channel/status.
func (g *Guest) Status(wireServerAddr string) (*hostproto.KeyStatus, http.Header, error) {
	resp, err := g.Do(wireServerAddr, g.Request("GET", "/secure-channel/status", WireServerHost, nil))
	if err != nil {
		return nil, nil, err
	}
	if resp.Status != 200 {
		return nil, resp.Header, fmt.Errorf("guest: status: %d: %s", resp.Status, resp.Body)
	}
	var ks hostproto.KeyStatus
	if err := json.Unmarshal(resp.Body, &ks); err != nil {
		return nil, resp.Header, fmt.Errorf("guest: status payload: %w", err)
	}
	return &ks, resp.Header, nil
}
