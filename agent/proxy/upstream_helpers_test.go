package proxy

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

// listenUpstream runs a loopback upstream on addr (port 0) until the test
// ends, serving each connection with serve, and returns its address.
func listenUpstream(tb testing.TB, addr string, serve func(c net.Conn, br *bufio.Reader)) netip.AddrPort {
	tb.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// serveUpstream answers every request on a connection with answer(req);
// close ends the connection after it.
func serveUpstream(tb testing.TB, addr string, answer func(req *rawhttp.Request) (resp string, close bool)) netip.AddrPort {
	return listenUpstream(tb, addr, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
			if err != nil || req.ReadBody(br, 1<<20) != nil {
				return
			}
			resp, end := answer(req)
			if _, err := io.WriteString(c, resp); err != nil || end {
				return
			}
		}
	})
}

// fixedUpstream answers every request head with answer, reading no body
// and parsing nothing, so that a benchmark counts the proxy's
// allocations, not the upstream's.
func fixedUpstream(tb testing.TB, answer string) netip.AddrPort {
	return listenUpstream(tb, "127.0.0.1:0", func(c net.Conn, br *bufio.Reader) {
		for {
			if !skipHead(br) {
				return
			}
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	})
}

// skipHead reads a request head without parsing it; false at the end of
// the stream.
func skipHead(br *bufio.Reader) bool {
	for {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if len(l) <= 2 {
			return true
		}
	}
}
