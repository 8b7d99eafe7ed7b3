package hostsim

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

// TestHeadAnsweredWithoutBody: on every endpoint and every answer path
// (served, 404, 405, 401, 403, injected 500 and malformed JSON, reader
// refusal) the answer to HEAD has no body. On a kept-alive connection a
// GET sent right after the HEAD must parse as the next answer; where the
// emulator closes (rejections), nothing may follow the HEAD answer.
func TestHeadAnsweredWithoutBody(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	mustPatch(t, e, `{"rootOnly": true}`)
	g := latched(t, e)
	a := e.Addrs()
	md := rawhttp.Header{Name: "Metadata", Value: "true"}
	for _, tt := range []struct {
		name      string
		addr      string
		g         guest.Guest
		target    string
		fault     *Fault
		raw       string // sent instead of a guest request
		status    int
		keepAlive bool
	}{
		{name: "200 status", addr: a.WireServer, g: *g, target: "/secure-channel/status", status: 200, keepAlive: true},
		{name: "405 imds", addr: a.IMDS, g: *g, target: "/metadata/instance?api-version=2021-02-01", status: 405, keepAlive: true},
		{name: "200 wireserver goal state", addr: a.WireServer, g: *g, target: "/machine/?comp=goalstate", status: 200, keepAlive: true},
		{name: "200 hostga health", addr: a.HostGA, g: *g, target: "/health", status: 200, keepAlive: true},
		{name: "404 hostga", addr: a.HostGA, g: *g, target: "/nope", status: 404, keepAlive: true},
		{name: "404 wireserver", addr: a.WireServer, g: *g, target: "/nope", status: 404, keepAlive: true},
		{name: "401 unsigned", addr: a.IMDS, g: guest.Guest{IsRoot: true}, target: "/metadata/instance?api-version=2021-02-01", status: 401},
		{name: "403 not root", addr: a.WireServer, g: withRoot(*g, false), target: "/machine/?comp=goalstate", status: 403},
		{name: "500 fault", addr: a.HostGA, g: *g, target: "/health", fault: &Fault{Endpoint: "hostga", Kind: FaultHTTP500, Count: 1}, status: 500, keepAlive: true},
		{name: "malformed-json fault", addr: a.IMDS, g: *g, target: "/metadata/versions", fault: &Fault{Endpoint: "imds", Kind: FaultMalformedJSON, Count: 1}, status: 200, keepAlive: true},
		{name: "400 unreadable", addr: a.IMDS, raw: "HEAD /metadata/versions HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\nHost: h\r\n\r\n", status: 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				if err := e.SetFault(*tt.fault); err != nil {
					t.Fatal(err)
				}
			}
			var wire bytes.Buffer
			if tt.raw != "" {
				wire.WriteString(tt.raw)
			} else {
				tt.g.Request("HEAD", tt.target, "h", nil, md).WriteTo(&wire)
				tt.g.Request("GET", tt.target, "h", nil, md).WriteTo(&wire)
			}
			c, err := net.Dial("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(wire.Bytes())
			br := bufio.NewReader(c)
			head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
			if err != nil {
				t.Fatalf("HEAD answer: %v", err)
			}
			if head.StatusCode != tt.status {
				t.Fatalf("HEAD status %d; want %d", head.StatusCode, tt.status)
			}
			if !tt.keepAlive {
				rest, _ := io.ReadAll(br)
				if !head.Close || len(rest) != 0 {
					t.Errorf("close %v, %d bytes after the HEAD answer (%q); want Connection: close and nothing", head.Close, len(rest), rest)
				}
				return
			}
			get, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("GET after HEAD on the same connection: %v (the HEAD answer carried a body?)", err)
			}
			body, err := io.ReadAll(get.Body)
			if err != nil || strconv.Itoa(len(body)) != get.Header.Get("Content-Length") {
				t.Errorf("GET body %d bytes, Content-Length %s: %v", len(body), get.Header.Get("Content-Length"), err)
			}
			if tt.fault == nil && tt.status != 405 && (get.StatusCode != head.StatusCode || get.Header.Get("Content-Length") != head.Header.Get("Content-Length")) {
				t.Errorf("HEAD %d/%s, GET %d/%s; want the GET's status and length", head.StatusCode, head.Header.Get("Content-Length"), get.StatusCode, get.Header.Get("Content-Length"))
			}
		})
	}
}
