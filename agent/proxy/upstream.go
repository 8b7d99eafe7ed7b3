package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/endorse"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// upstream is the connection to the original destination paired with one
// client connection.
type upstream struct {
	c  *net.TCPConn
	br *bufio.Reader
	dl deadlines
}

func (u *upstream) close() {
	u.c.Close()
	u.br.Reset(nil)
	readerPool.Put(u.br)
}

// dial opens the upstream connection to the record's original
// destination, marked so that the redirector lets it through.
func (cc *clientConn) dial() (*upstream, error) {
	d := net.Dialer{Timeout: cc.p.lim.Dial, Control: markControl(cc.p.cfg.ExemptMark)}
	c, err := d.Dial("tcp4", cc.rec.Dest.String())
	if err != nil {
		return nil, err
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	return &upstream{c: c.(*net.TCPConn), br: br}, nil
}

// errNoResponse is an upstream that closed before answering: on a reused
// connection the request is sent again on a new one.
var errNoResponse = errors.New("upstream closed the connection before answering")

// forward sends the endorsed request upstream and relays the response. It
// reports whether the client connection may carry another request.
func (cc *clientConn) forward(req *rawhttp.Request, e *audit.Entry, res endorse.Result) bool {
	p := cc.p
	for attempt := 0; ; attempt++ {
		fresh := cc.up == nil
		if fresh {
			up, err := cc.dial()
			if err != nil {
				p.log.WithError(err).WithField("endpoint", e.Endpoint).Warn("upstream dial failed")
				return cc.upstreamFailed(req, e, err)
			}
			cc.up = up
			cc.upConn.Store(up.c)
		}
		up := cc.up
		up.dl.writeWithin(up.c, p.lim.BodyIdle)
		var opt rawhttp.StreamOptions
		if res.Exempt {
			opt.Src = cc.c // large exempt bodies are spliced
			opt.Progress = func() {
				t := time.Now().Add(p.lim.BodyIdle)
				cc.dl.readExact(cc.c, t)
				up.dl.writeExact(up.c, t)
			}
		}
		_, err := endorse.Write(up.c, req, cc.br, res, opt)
		if err != nil {
			var re *rawhttp.Error
			if errors.As(err, &re) { // the client's streamed body was bad
				cc.dropUpstream()
				return cc.reject(req, e, re.Status, re.Reason)
			}
			cc.dropUpstream()
			if !fresh && !res.Exempt && attempt == 0 {
				continue
			}
			return cc.upstreamFailed(req, e, err)
		}
		status, keep, err := cc.relay(req)
		if errors.Is(err, errNoResponse) && !fresh && !res.Exempt && attempt == 0 {
			cc.dropUpstream()
			continue
		}
		if status == 0 { // nothing was sent to the client yet
			cc.dropUpstream()
			return cc.upstreamFailed(req, e, err)
		}
		if err != nil || !keep {
			cc.dropUpstream()
		}
		cc.finish(e, status)
		return err == nil && keep && keepAlive(req)
	}
}

func (cc *clientConn) dropUpstream() {
	if cc.up != nil {
		cc.upConn.Store(nil)
		cc.up.close()
		cc.up = nil
	}
}

// upstreamFailed answers agent.md §5.2 step 13: 504 on a timeout, 502 when
// the upstream connection could not be made or was closed, 503 otherwise.
func (cc *clientConn) upstreamFailed(req *rawhttp.Request, e *audit.Entry, err error) bool {
	status, reason := 503, ReasonUpstreamUnavailable
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		status, reason = 504, ReasonUpstreamTimeout
	case errors.Is(err, errNoResponse), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		status = 502
	}
	if e.Decision != audit.DecisionRejected {
		e.Decision = audit.DecisionRejected
	}
	cc.p.log.WithError(err).WithFields(map[string]any{"id": e.ID, "endpoint": e.Endpoint, "status": status}).Warn("upstream failed")
	return cc.reject(req, e, status, reason)
}

// relay reads the upstream response and streams it to the client, adding
// the marker header. status is 0 when nothing was sent to the client;
// keep reports whether the upstream connection may be reused.
func (cc *clientConn) relay(req *rawhttp.Request) (status int, keep bool, err error) {
	p, up := cc.p, cc.up
	up.dl.readWithin(up.c, p.lim.ResponseHeader)
	for {
		out := cc.takeOut()
		h, out, err := readResponseHead(up.br, out, p.lim.MaxHeaderBytes)
		cc.out = out
		if err != nil {
			cc.out = cc.out[:0]
			return 0, false, err
		}
		if h.status == 101 {
			cc.out = cc.out[:0]
			return 0, false, errors.New("upstream switched protocols; upgrades are not supported")
		}
		if h.status < 200 {
			if err := cc.flush(); err != nil {
				return h.status, false, err
			}
			continue
		}
		keep = !h.close
		switch {
		case req.Method == "HEAD" || h.status == 204 || h.status == 304:
			err = cc.flush()
		case h.chunked:
			err = cc.relayChunked()
		case h.length >= 0:
			err = cc.relayN(h.length)
			if err == nil {
				err = cc.flush()
			}
		default: // close-delimited
			keep = false
			err = cc.relayUntilEOF()
		}
		return h.status, keep, err
	}
}

// spliceMin is the remaining body size from which the bytes go kernel to
// kernel (io.Copy between the TCP connections splices).
const spliceMin = 64 << 10

// relayN copies n body bytes from the upstream to the client: what the
// reader holds through the output buffer, large remainders directly.
func (cc *clientConn) relayN(n int64) error {
	up, lim := cc.up, cc.p.lim
	for n > 0 {
		if b := up.br.Buffered(); b > 0 {
			k := int(min(int64(b), n))
			buf, _ := up.br.Peek(k)
			cc.out = append(cc.out, buf...)
			up.br.Discard(k)
			n -= int64(k)
			if len(cc.out) >= 32<<10 {
				if err := cc.flush(); err != nil {
					return err
				}
				cc.out = cc.takeOut()
			}
			continue
		}
		up.dl.readWithin(up.c, lim.BodyIdle)
		if n >= spliceMin {
			if err := cc.flush(); err != nil {
				return err
			}
			cc.dl.writeWithin(cc.c, lim.BodyIdle)
			k, err := io.CopyN(cc.c, up.c, min(n, 1<<20))
			n -= k
			if err != nil {
				return err
			}
			continue
		}
		if _, err := up.br.Peek(1); err != nil {
			return err
		}
	}
	return nil
}

// relayChunked forwards a chunked body with its framing as received.
func (cc *clientConn) relayChunked() error {
	for {
		line, err := cc.relayLine()
		if err != nil {
			return err
		}
		size, ok := rawhttp.ChunkSize(line)
		if !ok {
			return errors.New("upstream sent a malformed chunk size")
		}
		if size == 0 {
			break
		}
		if err := cc.relayN(size); err != nil {
			return err
		}
		if l, err := cc.relayLine(); err != nil || len(l) != 0 {
			return errors.New("upstream chunk not followed by CRLF")
		}
	}
	for budget := cc.p.lim.MaxHeaderBytes; ; { // trailers
		line, err := cc.relayLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if budget -= len(line); budget < 0 {
			return errors.New("upstream trailer section too large")
		}
	}
	return cc.flush()
}

// maxFramingLine bounds a chunk-size or trailer line from the upstream.
const maxFramingLine = 4096

// relayLine copies one line to the output and returns it without its
// ending.
func (cc *clientConn) relayLine() ([]byte, error) {
	cc.up.dl.readWithin(cc.up.c, cc.p.lim.BodyIdle)
	line, err := cc.up.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("upstream chunk framing line too long")
		}
		return nil, err
	}
	if len(line) > maxFramingLine {
		return nil, errors.New("upstream chunk framing line too long")
	}
	cc.out = append(cc.out, line...)
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// relayUntilEOF copies a close-delimited body.
func (cc *clientConn) relayUntilEOF() error {
	for {
		err := cc.relayN(1 << 20)
		if errors.Is(err, io.EOF) {
			return cc.flush()
		}
		if err != nil {
			return err
		}
	}
}

// responseHead is what framing needs from a response head.
type responseHead struct {
	status  int
	length  int64 // -1 when absent
	chunked bool
	close   bool // the upstream connection ends after this response
}

// readResponseHead appends the response head from br to out, with the
// marker header of agent.md §5.3 inserted before the empty line, and
// parses the framing.
func readResponseHead(br *bufio.Reader, out []byte, max int) (responseHead, []byte, error) {
	h := responseHead{length: -1}
	start := len(out)
	budget := max
	var http10, keepAlive bool
	for i := 0; ; i++ {
		line, err := br.ReadSlice('\n')
		budget -= len(line)
		if err != nil || budget < 0 {
			if i == 0 && len(line) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				return h, out[:start], errNoResponse
			}
			if err == nil || errors.Is(err, bufio.ErrBufferFull) {
				err = errors.New("upstream response head too large")
			}
			return h, out[:start], err
		}
		s := line[:len(line)-1]
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
		if i == 0 {
			if len(s) < 12 || string(s[:7]) != "HTTP/1." || s[8] != ' ' {
				return h, out[:start], errors.New("upstream sent a malformed status line")
			}
			http10 = s[7] == '0'
			code, ok := parseDecimal(s[9:12])
			if !ok || code < 100 || code > 999 {
				return h, out[:start], errors.New("upstream sent a malformed status code")
			}
			h.status = int(code)
			out = append(out, line...)
			continue
		}
		if len(s) == 0 {
			out = append(out, hostproto.HeaderAuthorization+": value\r\n"...)
			out = append(out, line...)
			break
		}
		out = append(out, line...)
		name, value, ok := bytes.Cut(s, []byte{':'})
		if !ok {
			return h, out[:start], errors.New("upstream sent a malformed header line")
		}
		value = bytes.Trim(value, " \t")
		switch {
		case len(name) > 17 || len(name) < 10 || name[0]|0x20 != 'c' && name[0]|0x20 != 't':
			// none of the framing headers
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseDecimal(value)
			if !ok || h.length >= 0 && h.length != n {
				return h, out[:start], errors.New("upstream sent an invalid Content-Length")
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = true
			if !bytes.EqualFold(value, []byte("chunked")) {
				h.chunked, h.close = false, true // close-delimited
				h.length = -2
			}
		case bytes.EqualFold(name, []byte("Connection")):
			if hasToken(string(value), "close") {
				h.close = true
			}
			if hasToken(string(value), "keep-alive") {
				keepAlive = true
			}
		}
	}
	if h.length == -2 {
		h.length = -1
	}
	if h.chunked {
		h.length = -1
	}
	if http10 && !keepAlive {
		h.close = true
	}
	return h, out, nil
}

func parseDecimal(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
