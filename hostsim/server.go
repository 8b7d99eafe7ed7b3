package hostsim

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim/content"
	"github.com/mspguest/msp/hostsim/wire"
)

// Connection limits.
const (
	idleTimeout = 60 * time.Second
	// maxBody is the largest request body buffered.
	maxBody = 16 << 20
	// maxStreamedBody is the largest exempt upload (PUT /vmAgentLog, POST
	// /machine/?comp=telemetrydata), which is streamed, not buffered
	// (host-protocol.md §8.8).
	maxStreamedBody = 100 << 20
)

// endpointServer serves one emulated host endpoint with a byte-exact
// request reader, so that signatures are verified over what was received
// (host-protocol.md §8.9): net/http would move Host, drop
// Transfer-Encoding and canonicalise names.
type endpointServer struct {
	e  *Emulator
	ep hostproto.Endpoint
	ln net.Listener
}

func (s *endpointServer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.e.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.e.log.WithError(err).WithField("endpoint", s.ep.String()).Warn("accept failed; listener stopped")
			return
		}
		if s.e.takeFault(s.ep, FaultRefuse) != nil {
			resetConn(c)
			continue
		}
		if !s.e.track(c) {
			c.Close()
			return
		}
		go s.serveConn(c)
	}
}

// resetConn closes with an RST, like a refused or crashed service.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// track registers an open connection so Close can end it; it reports
// false once the emulator is closing.
func (e *Emulator) track(c net.Conn) bool {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.closing {
		return false
	}
	if e.open == nil {
		e.open = make(map[net.Conn]struct{})
	}
	e.open[c] = struct{}{}
	e.conns.Add(1)
	return true
}

func (e *Emulator) untrack(c net.Conn) {
	e.connMu.Lock()
	delete(e.open, c)
	e.connMu.Unlock()
	e.conns.Done()
}

// closeConns ends every open connection (Close).
func (e *Emulator) closeConns() {
	e.connMu.Lock()
	e.closing = true
	for c := range e.open {
		c.Close()
	}
	e.connMu.Unlock()
}

func (s *endpointServer) serveConn(c net.Conn) {
	defer s.e.untrack(c)
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		req, err := wire.ReadHead(br)
		if err != nil {
			s.readFailed(bw, err)
			return
		}
		if v, ok := req.Value("Expect"); ok && strings.EqualFold(v, "100-continue") {
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			bw.Flush()
		}
		in, err := s.e.receive(s.ep, req, br)
		if err != nil {
			s.readFailed(bw, err)
			return
		}
		keep := s.e.handle(s.ep, in, bw)
		if !keep || !keepAlive(req) {
			return
		}
	}
}

// readFailed answers a request the reader refused (400/413/431) unless the
// peer simply closed.
func (s *endpointServer) readFailed(bw *bufio.Writer, err error) {
	var re *wire.Error
	if !errors.As(err, &re) {
		return // EOF, timeout or reset: nothing to answer
	}
	s.e.log.WithFields(logrus.Fields{"endpoint": s.ep.String(), "reason": re.Reason}).Warn("unreadable request: " + re.Msg)
	s.e.recordUnreadable(s.ep, re)
	r := content.Error(re.Status, re.Reason, re.Msg)
	writeResponse(bw, r, s.ep, s.e.clock(), true, re.Method == "HEAD")
}

func keepAlive(req *wire.Request) bool {
	v, ok := req.Value("Connection")
	if req.Proto == "HTTP/1.0" {
		return ok && strings.EqualFold(v, "keep-alive")
	}
	return !ok || !strings.EqualFold(v, "close")
}

// handle runs one request through faults, the signature guard and the
// service, writes the answer and records the verdict. It reports whether
// the connection may be reused.
func (e *Emulator) handle(ep hostproto.Endpoint, in *received, bw *bufio.Writer) bool {
	fault := e.takeFault(ep, "")
	if fault != nil && fault.Kind == FaultDelay {
		t := time.NewTimer(time.Duration(fault.DelayMs) * time.Millisecond)
		select {
		case <-t.C:
		case <-e.done: // Close must not wait out an injected delay
			t.Stop()
			return false
		}
	}
	d := e.decide(ep, in)
	var resp content.Response
	keep := true
	switch {
	case fault != nil && fault.Kind == FaultHTTP500:
		resp = content.Error(500, "internal", "injected fault http500")
	case fault != nil && fault.Kind == FaultMalformedJSON:
		resp = content.Response{Status: 200, ContentType: "application/json; charset=utf-8", Body: []byte(`{"injected": "malformed-json", "truncated": [1, 2`)}
	case d.reject != nil:
		resp = *d.reject
		keep = false // like the proxy's reject: Connection: close
	default:
		resp = e.serve(ep, d.class, in.req)
	}
	fk := ""
	if fault != nil {
		fk = fault.Kind
	}
	now := e.clock()
	head := in.req.Method == "HEAD"
	// Record before answering so a client that got the answer finds the
	// record in /verifications.
	if fk == FaultDropAfterHeaders {
		e.record(ep, in, d, 0, fk)
		resp.Body = append(resp.Body, make([]byte, 64)...) // announce more than is sent
		writeHead(bw, resp, ep, now, true)
		bw.Flush()
		return false
	}
	e.record(ep, in, d, resp.Status, fk)
	writeResponse(bw, resp, ep, now, !keep, head)
	return keep
}

// serve dispatches to the endpoint's service.
// WireServer and HostGAPlugin serve HEAD as GET (RFC 9110 §9.3.2), IMDS
// answers it 405 like any method but GET; writeResponse drops the body.
func (e *Emulator) serve(ep hostproto.Endpoint, c class, wr *wire.Request) content.Response {
	req := forContent(wr)
	if req.Method == "HEAD" && ep != hostproto.IMDS {
		req.Method = "GET"
	}
	switch ep {
	case hostproto.IMDS:
		return content.IMDS(req, e.clock())
	case hostproto.WireServer:
		if c == classAttestation {
			return e.serveAttestation(req)
		}
		return e.serveWireServer(req)
	case hostproto.HostGAPlugin:
		return content.HostGA(req)
	}
	return content.Error(404, "not-found", "unknown endpoint")
}

// clock returns the host clock under the lock.
func (e *Emulator) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hostNow()
}

// writeResponse writes the answer; the answer to HEAD has the head of
// the GET answer and no body (RFC 9110 §9.3.2), so a keep-alive stream
// stays framed.
func writeResponse(bw *bufio.Writer, r content.Response, ep hostproto.Endpoint, now time.Time, closeConn, head bool) {
	writeHead(bw, r, ep, now, closeConn)
	if !head {
		bw.Write(r.Body)
	}
	bw.Flush()
}

// writeHead writes the status line and headers. WireServer and HostGAPlugin
// answers carry x-ms-azure-host-date (host clock) so guests can sync
// (host-protocol.md §7.4).
func writeHead(bw *bufio.Writer, r content.Response, ep hostproto.Endpoint, now time.Time, closeConn bool) {
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", r.Status, http.StatusText(r.Status))
	date := now.UTC().Format(hostproto.DateLayout)
	bw.WriteString("Date: " + date + "\r\n")
	if ep != hostproto.IMDS {
		bw.WriteString(hostproto.HeaderDate + ": " + date + "\r\n")
	}
	if r.ContentType != "" {
		bw.WriteString("Content-Type: " + r.ContentType + "\r\n")
	}
	for _, h := range r.Header {
		bw.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	if r.Status != 304 && r.Status >= 200 {
		bw.WriteString("Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	if closeConn {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("Server: msp-hostsim\r\n\r\n")
}
