package proxy

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

// serveUpstream runs an upstream on a loopback address (port 0) until the
// test ends: every request on a connection gets answer(req); close ends
// the connection after it. It returns the bound address.
func serveUpstream(tb testing.TB, addr string, answer func(req *rawhttp.Request) (resp string, close bool)) netip.AddrPort {
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
				br := bufio.NewReader(c)
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
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// fixedUpstream answers every request with answer.
func fixedUpstream(tb testing.TB, answer string) netip.AddrPort {
	return serveUpstream(tb, "127.0.0.1:0", func(*rawhttp.Request) (string, bool) { return answer, false })
}
