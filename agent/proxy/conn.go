package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/endorse"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/bpf"
)

// clientConn is one accepted connection and, once a request was
// forwarded, its own upstream connection (agent.md §4).
type clientConn struct {
	p      *Proxy
	c      *net.TCPConn
	br     *bufio.Reader
	rec    bpf.Record
	hasRec bool
	caller identity.Caller
	up     *upstream
	upConn atomic.Pointer[net.TCPConn] // up's connection, for Proxy.Close
	canon  authz.Canonical
	body   []byte      // lent to signed requests' bodies
	ent    audit.Entry // the current request's audit entry
	outBuf *[]byte     // pooled backing of out
	out    []byte      // what goes to the client next, written at once
	dl     deadlines   // the client connection's
}

// deadlines are a connection's read and write deadlines. Moving one is a
// runtime timer change under a lock, a tenth of the proxy's CPU when done
// several times per request, so the waits that allow it are lazy: within
// leaves a deadline alone while it is between half the limit and the
// limit away, so such a wait ends after at least half and at most all of
// its limit. The request head (when not yet received) and body reads are
// timed exactly.
type deadlines struct{ read, write time.Time }

func (d *deadlines) readWithin(c *net.TCPConn, limit time.Duration) {
	now := time.Now()
	if left := d.read.Sub(now); left < limit/2 || left > limit {
		d.readExact(c, now.Add(limit))
	}
}

func (d *deadlines) readExact(c *net.TCPConn, t time.Time) {
	d.read = t
	c.SetReadDeadline(t)
}

func (d *deadlines) writeWithin(c *net.TCPConn, limit time.Duration) {
	now := time.Now()
	if left := d.write.Sub(now); left < limit/2 || left > limit {
		d.writeExact(c, now.Add(limit))
	}
}

func (d *deadlines) writeExact(c *net.TCPConn, t time.Time) {
	d.write = t
	c.SetWriteDeadline(t)
}

// headBuffered reports whether a whole request head is already in br, so
// that reading it cannot block.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// Buffers are pooled across connections: an idle keep-alive connection
// holds only its reader.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	outPool    = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}
)

// maxPooled keeps one large request or response from pinning its buffer.
const maxPooled = 128 << 10

func (p *Proxy) newClientConn(c *net.TCPConn) *clientConn {
	return &clientConn{p: p, c: c}
}

func (cc *clientConn) serve() {
	p := cc.p
	defer p.untrack(cc)
	defer cc.c.Close()
	// A bug must cost one connection, not every caller's interception.
	defer func() {
		if r := recover(); r != nil {
			p.log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).Error("proxy connection panicked; closed it")
		}
	}()
	peer := cc.c.RemoteAddr().(*net.TCPAddr).AddrPort()
	rec, ok, err := p.cfg.Records.Take(peer)
	if err != nil {
		p.log.WithError(err).WithField("peer", peer.String()).Warn("caller record lookup failed; serving the connection as direct")
	}
	cc.rec, cc.hasRec = rec, ok && err == nil
	if cc.hasRec {
		cc.caller = p.identify(rec)
	}
	cc.br = readerPool.Get().(*bufio.Reader)
	cc.br.Reset(cc.c)
	defer func() {
		cc.br.Reset(nil)
		readerPool.Put(cc.br)
		if cc.up != nil {
			cc.up.close()
		}
	}()
	if !p.conns.acquire(rec.UID, cc.hasRec, p.lim) {
		// Over a cap: the 503 goes after the request head, so that the
		// client reads it rather than a reset, but such waits are short
		// and bounded in number: a user's cap must bound what its
		// connections hold (15,000 silent ones held 185 MB for the
		// header-read timeout before; docs/reliability.md).
		if !p.conns.refuse(p.lim) {
			return
		}
		cc.dl.readExact(cc.c, time.Now().Add(min(p.lim.HeaderRead, overCapHeadRead)))
		req, err := rawhttp.ReadHead(cc.br, rawhttp.Limits{MaxHeaderBytes: p.lim.MaxHeaderBytes})
		p.conns.refused() // the answer and its linger are bounded in time
		if err == nil {
			e := cc.entry(req, time.Now())
			cc.reject(req, e, 503, ReasonOverloaded)
		}
		return
	}
	defer p.conns.release(rec.UID, cc.hasRec)

	for first := true; ; first = false {
		if !first && cc.br.Buffered() == 0 {
			cc.dl.readWithin(cc.c, p.lim.Idle)
			if _, err := cc.br.Peek(1); err != nil {
				return
			}
		}
		start := time.Now()
		if first || !headBuffered(cc.br) {
			cc.dl.readExact(cc.c, start.Add(p.lim.HeaderRead))
		}
		req, err := rawhttp.ReadHead(cc.br, rawhttp.Limits{MaxHeaderBytes: p.lim.MaxHeaderBytes})
		if err != nil {
			var re *rawhttp.Error
			if errors.As(err, &re) {
				e := cc.entry(nil, start)
				cc.reject(nil, e, re.Status, re.Reason)
			}
			return
		}
		if !cc.handle(req, start) {
			return
		}
	}
}

// entry starts the audit entry of a request (req may be nil when the
// request could not be read) in the connection's one entry.
func (cc *clientConn) entry(req *rawhttp.Request, start time.Time) *audit.Entry {
	e := &cc.ent
	*e = audit.Entry{Time: start, ID: cc.p.ids.next(), Decision: audit.DecisionRejected}
	if req != nil {
		e.Method, e.Target = req.Method, req.Target
	}
	if cc.hasRec {
		e.Caller = audit.CallerOf(&cc.caller)
		if ep, ok := cc.p.cfg.Endpoints[cc.rec.Dest]; ok {
			e.Endpoint = ep.String()
		}
	}
	return e
}

func (cc *clientConn) finish(e *audit.Entry, status int) {
	e.Status = status
	e.LatencyUs = time.Since(e.Time).Microseconds()
	if a := cc.p.cfg.Audit; a != nil {
		a.Record(*e)
	}
}

// allowedMethods is agent.md §5.2 step 2's list.
const allowHeader = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"

func allowedMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH":
		return true
	}
	return false
}

// handle runs one request through agent.md §5.2 and reports whether the
// connection may carry another.
func (cc *clientConn) handle(req *rawhttp.Request, start time.Time) bool {
	p := cc.p
	e := cc.entry(req, start)
	if !allowedMethod(req.Method) {
		return cc.reject(req, e, 405, ReasonMethodNotAllowed)
	}
	// Step 3: the one strict reading of the target (authorization.md I-24
	// with I-4, I-5, I-7), with the connection's own buffers.
	if err := cc.canon.CheckTarget(req.Target); err != nil {
		te := &authz.TargetError{Status: 403, Reason: authz.ReasonPathRejected}
		errors.As(err, &te)
		return cc.reject(req, e, te.Status, string(te.Reason))
	}
	path, _, _ := strings.Cut(req.Target, "?")
	switch path {
	case "/provision":
		return cc.serveHook(req, e, p.cfg.Provision, false)
	case "/gpa-aggregated-status":
		if !cc.hasRec || !cc.caller.Root {
			return cc.reject(req, e, 403, ReasonForbidden)
		}
		return cc.serveHook(req, e, p.cfg.AggregatedStatus, true)
	}
	if !cc.hasRec {
		return cc.reject(req, e, 421, ReasonMisdirected)
	}
	ep, ok := p.cfg.Endpoints[cc.rec.Dest]
	if !ok {
		return cc.reject(req, e, 421, ReasonMisdirected)
	}
	d := p.Policy(ep).Decide(authz.Request{Endpoint: ep, Method: req.Method, Target: req.Target}, cc.caller.Authz())
	e.Reason, e.Privilege, e.Role, e.Identity = string(d.Reason), d.Privilege, d.Role, d.Identity
	if d.Verdict == authz.Deny {
		e.Decision = audit.DecisionDeny
		return cc.reject(req, e, 403, string(d.Reason))
	}
	params := endorse.Params{Endpoint: ep, IsRoot: cc.caller.Root, Date: p.date(), Signer: p.signer.Load()}
	exempt := endorse.Exempt(params, req.Method, req.Target)
	if params.Signer == nil && !exempt && p.modes.Load().Of(ep) == hostproto.ModeEnforce {
		e.Reason = ReasonNoKey
		return cc.reject(req, e, 503, ReasonNoKey)
	}
	if req.ContentLength() > endorse.BodyLimit(params, req.Method, req.Target) {
		return cc.reject(req, e, 413, rawhttp.ReasonBodyTooLarge) // before a 100 Continue invites the body
	}
	if v, ok := req.Get("Expect"); ok && strings.EqualFold(v, "100-continue") && (req.ContentLength() > 0 || req.Chunked()) {
		cc.dl.writeWithin(cc.c, p.lim.BodyIdle)
		if _, err := cc.c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			return false
		}
	}
	if req.ContentLength() > 0 || req.Chunked() {
		cc.dl.readExact(cc.c, time.Now().Add(p.lim.BodyRead))
	}
	req.Body = cc.body[:0]
	res, err := endorse.Prepare(req, cc.br, params)
	if cap(req.Body) > cap(cc.body) && cap(req.Body) <= maxPooled {
		cc.body = req.Body[:0]
	}
	if err != nil {
		var re *rawhttp.Error
		if !errors.As(err, &re) {
			re = &rawhttp.Error{Status: 400, Reason: rawhttp.ReasonBadBody}
		}
		return cc.reject(req, e, re.Status, re.Reason)
	}
	switch {
	case res.Exempt:
		e.Decision = audit.DecisionExempt
	case d.Verdict == authz.Audit:
		e.Decision = audit.DecisionAuditDeny
	default:
		e.Decision = audit.DecisionAllow
	}
	e.Signed = res.Signed
	return cc.forward(req, e, res)
}

// serveHook answers one of the listener's own endpoints.
func (cc *clientConn) serveHook(req *rawhttp.Request, e *audit.Entry, h Hook, withCaller bool) bool {
	if err := cc.discardBody(req); err != nil {
		return false
	}
	r := Response{Status: 404, ContentType: "text/plain", Body: []byte("not served here")}
	if h != nil {
		var c *identity.Caller
		if withCaller || cc.hasRec {
			c = &cc.caller
		}
		r = h(req, c)
	}
	keep := keepAlive(req)
	out := cc.takeOut()
	out = appendStatusLine(out, r.Status)
	if r.ContentType != "" {
		out = append(out, "Content-Type: "...)
		out = append(out, r.ContentType...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(r.Body)), 10)
	out = append(out, "\r\n"...)
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if req.Method != "HEAD" {
		out = append(out, r.Body...)
	}
	cc.out = out
	err := cc.flush()
	e.Decision, e.Reason = audit.DecisionAllow, ""
	cc.finish(e, r.Status)
	return keep && err == nil
}

// discardBody reads and drops the (small) body of a request the proxy
// answers itself.
func (cc *clientConn) discardBody(req *rawhttp.Request) error {
	if req.ContentLength() <= 0 && !req.Chunked() {
		return nil
	}
	cc.dl.readExact(cc.c, time.Now().Add(cc.p.lim.BodyRead))
	req.Body = cc.body[:0]
	return req.ReadBody(cc.br, endorse.SignedBodyLimit)
}

// keepAlive reports whether the client wants the connection kept.
func keepAlive(req *rawhttp.Request) bool {
	if req.Proto == "HTTP/1.0" {
		return false
	}
	v, ok := req.Get("Connection")
	return !ok || !hasToken(v, "close")
}

// hasToken reports whether a comma-separated header value lists tok
// (case-insensitive).
func hasToken(v, tok string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(rawhttp.TrimOWS(t), tok) {
			return true
		}
	}
	return false
}

// reject answers a refusal with the reason header, Connection: close and
// the body "<code> <id>" (405: "Method Not Allowed"), records it and
// closes gracefully. It returns false (the connection ends).
func (cc *clientConn) reject(req *rawhttp.Request, e *audit.Entry, status int, reason string) bool {
	e.Reason = reason
	body := reason + " " + e.ID
	out := cc.takeOut()
	out = appendStatusLine(out, status)
	if status == 405 {
		out = append(out, "Allow: "+allowHeader+"\r\n"...)
		body = "Method Not Allowed"
	}
	out = append(out, "Content-Type: text/plain\r\nx-ms-azure-proxy-reason: "...)
	out = append(out, reason...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	if req == nil || req.Method != "HEAD" {
		out = append(out, body...)
	}
	cc.out = out
	cc.flush()
	cc.finish(e, status)
	cc.linger()
	return false
}

// linger half-closes and drains what the client still sends for a moment,
// so that closing with unread bytes does not reset the connection before
// the client read the answer.
func (cc *clientConn) linger() {
	cc.c.CloseWrite()
	cc.dl.readExact(cc.c, time.Now().Add(500*time.Millisecond))
	io.CopyN(io.Discard, cc.br, 256<<10)
}

// takeOut returns the connection's output buffer, empty.
func (cc *clientConn) takeOut() []byte {
	if cc.outBuf == nil {
		cc.outBuf = outPool.Get().(*[]byte)
		cc.out = *cc.outBuf
	}
	return cc.out[:0]
}

// flush writes the output buffer in one write and returns the buffer to
// the pool.
func (cc *clientConn) flush() error {
	if len(cc.out) == 0 {
		return nil
	}
	cc.dl.writeWithin(cc.c, cc.p.lim.BodyIdle)
	_, err := cc.c.Write(cc.out)
	if cc.outBuf != nil && cap(cc.out) <= maxPooled {
		*cc.outBuf = cc.out[:0]
		outPool.Put(cc.outBuf)
	}
	cc.outBuf, cc.out = nil, nil
	return err
}

var statusText = map[int]string{
	100: "Continue", 200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 413: "Content Too Large", 417: "Expectation Failed",
	421: "Misdirected Request", 431: "Request Header Fields Too Large",
	500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

func appendStatusLine(out []byte, status int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	text, ok := statusText[status]
	if !ok {
		text = "Status"
	}
	out = append(out, text...)
	return append(out, "\r\n"...)
}
