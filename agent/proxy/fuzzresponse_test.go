package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
)

// FuzzUpstreamResponse is the response framing parser end to end: an
// upstream answers the proxied request with arbitrary bytes (head, then
// Content-Length, chunked or close-delimited body, trailers) and closes.
// The proxy never panics, never hangs past its limits, and whatever it
// sends the client starts with a status line: its own error or the
// relayed response.
func FuzzUpstreamResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\nTrailer: v\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nok\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0002\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nclose-delimited body",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add(s)
	}
	var answer atomic.Pointer[string]
	dest := listenUpstream(f, "127.0.0.1:0", func(c net.Conn, br *bufio.Reader) {
		for { // skip the request head; the proxied GET has no body
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(l) <= 2 {
				break
			}
		}
		io.WriteString(c, *answer.Load())
	})
	const limit = 300 * time.Millisecond
	addr, hook := fuzzProxy(f, dest, hostproto.IMDS,
		Limits{HeaderRead: time.Second, BodyRead: time.Second, Idle: time.Second, Dial: time.Second, ResponseHeader: limit, BodyIdle: limit})
	f.Fuzz(func(t *testing.T, resp string) {
		answer.Store(&resp)
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(start.Add(5 * time.Second))
		io.WriteString(c, "GET /metadata/instance HTTP/1.1\r\nHost: h\r\nMetadata: true\r\nConnection: close\r\n\r\n")
		out, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("after %v: %v (got %q)", time.Since(start), err, out)
		}
		if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.") {
			t.Fatalf("answer %q does not start with a status line", out)
		}
		if n := hook.n.Load(); n > 0 {
			t.Fatalf("%d connections panicked", n)
		}
	})
}
