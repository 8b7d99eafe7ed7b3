package keykeeper

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// maxHostAnswer bounds a secure-channel answer body.
const maxHostAnswer = 1 << 20

// acquireBody is the body of POST /secure-channel/key (host-protocol.md §2).
var acquireBody = []byte(`{"authorizationScheme": "Azure-HMAC-SHA256"}`)

// hostClient makes the three secure-channel calls of host-protocol.md §2,
// one new TCP connection per call as GPA does. Requests are written byte
// for byte with rawhttp, so the headers signed are exactly the headers
// sent; its sockets carry the exemption SO_MARK.
type hostClient struct {
	addr    string // WireServer host:port
	host    string // Host header
	timeout time.Duration
	dialer  net.Dialer
}

func newHostClient(addr, host string, timeout time.Duration, mark uint32) *hostClient {
	return &hostClient{
		addr:    addr,
		host:    host,
		timeout: timeout,
		dialer:  net.Dialer{Control: markControl(mark)},
	}
}

// hostAnswer is a read answer.
type hostAnswer struct {
	status int
	header http.Header
	body   []byte
}

// HostError is a secure-channel answer with an unexpected HTTP status.
type HostError struct {
	Call   string // "status", "acquire key", "attest key <guid>"
	Status int
	Body   string // at most 200 bytes of the answer
}

func (e *HostError) Error() string {
	return fmt.Sprintf("%s: host answered %d: %s", e.Call, e.Status, e.Body)
}

// request builds a host request with GPA's headers (host-protocol.md §2):
// Host, Content-Type, Content-Length, Metadata "True " (trailing space),
// claims (the agent is root), the host date and, with a signer, the
// authorization computed over exactly these headers.
func (c *hostClient) request(method, target string, body []byte, contentType, date string, signer *sign.Signer) *rawhttp.Request {
	r := &rawhttp.Request{Method: method, Target: target, Proto: "HTTP/1.1", Body: body}
	r.Headers = append(r.Headers, rawhttp.Header{Name: "Host", Value: c.host})
	if contentType != "" {
		r.Headers = append(r.Headers, rawhttp.Header{Name: "Content-Type", Value: contentType})
	}
	r.Headers = append(r.Headers,
		rawhttp.Header{Name: "Content-Length", Value: strconv.Itoa(len(body))},
		rawhttp.Header{Name: "Metadata", Value: "True "},
		rawhttp.Header{Name: hostproto.HeaderClaims, Value: hostproto.ClaimsRoot},
		rawhttp.Header{Name: hostproto.HeaderDate, Value: date},
	)
	if signer != nil {
		r.Headers = append(r.Headers, rawhttp.Header{Name: sign.AuthorizationHeader, Value: signer.Authorization(r.Method, r.Target, r.Headers, r.Body)})
	}
	return r
}

// do sends one request over a new connection, bounded by the call timeout
// and ctx, and reads the answer.
func (c *hostClient) do(ctx context.Context, req *rawhttp.Request) (*hostAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var wire bytes.Buffer
	req.WriteTo(&wire)
	if _, err := conn.Write(wire.Bytes()); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: req.Method})
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHostAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("read answer body: %w", err)
	}
	if len(body) > maxHostAnswer {
		return nil, fmt.Errorf("answer body larger than %d bytes", maxHostAnswer)
	}
	return &hostAnswer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func hostError(call string, a *hostAnswer) error {
	b := a.body
	if len(b) > 200 {
		b = b[:200]
	}
	return &HostError{Call: call, Status: a.status, Body: string(bytes.ToValidUTF8(b, []byte("?")))}
}

// status sends GET /secure-channel/status (signed when a key is in
// memory). Any 2xx is success; the answer is returned even when the
// payload is invalid, so its date headers can still synchronise host time.
func (c *hostClient) status(ctx context.Context, date string, signer *sign.Signer) (*hostAnswer, *hostproto.KeyStatus, error) {
	a, err := c.do(ctx, c.request("GET", "/secure-channel/status", nil, "", date, signer))
	if err != nil {
		return nil, nil, fmt.Errorf("status: %w", err)
	}
	if a.status < 200 || a.status > 299 {
		return a, nil, hostError("status", a)
	}
	ks, err := hostproto.ParseKeyStatus(a.body)
	if err != nil {
		return a, nil, fmt.Errorf("status: %w", err)
	}
	return a, ks, nil
}

// acquire sends POST /secure-channel/key (signed with the current key, if
// any); exactly 200 is success. The key in the answer is never logged or
// echoed in errors.
func (c *hostClient) acquire(ctx context.Context, date string, signer *sign.Signer) (*hostproto.Key, error) {
	a, err := c.do(ctx, c.request("POST", "/secure-channel/key", acquireBody, "application/json", date, signer))
	if err != nil {
		return nil, fmt.Errorf("acquire key: %w", err)
	}
	if a.status != 200 {
		// The body is left out: an odd 2xx answer may carry a key.
		return nil, &HostError{Call: "acquire key", Status: a.status, Body: "(body not shown)"}
	}
	k, err := hostproto.ParseKey(a.body)
	if err != nil {
		return nil, fmt.Errorf("acquire key: answer is not a valid key: %w", redactJSONError(err))
	}
	return k, nil
}

// attest sends POST /secure-channel/key/{guid}/key-attestation with an
// empty body, signed with the key being attested; exactly 200 is success.
func (c *hostClient) attest(ctx context.Context, date string, newKey *sign.Signer) error {
	call := "attest key " + newKey.GUID()
	a, err := c.do(ctx, c.request("POST", "/secure-channel/key/"+newKey.GUID()+"/key-attestation", nil, "", date, newKey))
	if err != nil {
		return fmt.Errorf("%s: %w", call, err)
	}
	if a.status != 200 {
		return hostError(call, a)
	}
	return nil
}
