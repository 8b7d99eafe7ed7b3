package proxy

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/internal/loadgen"
)

const poolAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// poolUpstream answers every request head with poolAnswer; afterIdle,
// when set, runs on a connection idle for 50 ms (close it, write to it).
// It counts accepted and ended connections.
func poolUpstream(t *testing.T, afterIdle func(c net.Conn) bool) (dest netip.AddrPort, accepted, ended *atomic.Int64) {
	accepted, ended = new(atomic.Int64), new(atomic.Int64)
	dest = listenUpstream(t, "127.0.0.1:0", func(c net.Conn, br *bufio.Reader) {
		accepted.Add(1)
		defer ended.Add(1)
		idle := afterIdle // once per connection
		for {
			if idle != nil {
				c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			}
			if _, err := br.Peek(1); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() && idle(c) {
					c.SetReadDeadline(time.Time{})
					idle = nil
					continue
				}
				return
			}
			if !skipHead(br) {
				return
			}
			if _, err := io.WriteString(c, poolAnswer); err != nil {
				return
			}
		}
	})
	return dest, accepted, ended
}

func poolProxy(t *testing.T, dest netip.AddrPort) (*Proxy, string) {
	t.Helper()
	rec := bpf.Record{UID: 1000, GID: 1000, TGID: 1, Dest: dest}
	px, err := New(Config{Addr: "127.0.0.1:0", Records: fixedRecords{rec}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{dest: hostproto.IMDS}})
	if err != nil {
		t.Fatal(err)
	}
	px.SetPolicy(hostproto.IMDS, authz.Unrestricted(hostproto.ModeEnforce))
	px.SetSigner(testSigner(t))
	ln, err := px.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go px.Serve(ln)
	t.Cleanup(func() { px.Close() })
	return px, ln.Addr().String()
}

// oneRequest opens a client connection, sends one request and closes it,
// then waits until the proxy pooled the upstream connection (or not).
func oneRequest(t *testing.T, px *Proxy, addr string, dest netip.AddrPort, wantPooled int) {
	t.Helper()
	c, err := loadgen.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	status, err := c.Do([]byte("GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"))
	c.Close()
	if err != nil || status != 200 {
		t.Fatalf("status %d, %v; want 200", status, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for px.pool.count(dest) != wantPooled {
		if time.Now().After(deadline) {
			t.Fatalf("pooled upstream connections = %d, want %d", px.pool.count(dest), wantPooled)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewClientConnectionsReuseTheUpstream(t *testing.T) {
	dest, accepted, _ := poolUpstream(t, nil)
	px, addr := poolProxy(t, dest)
	for range 5 {
		oneRequest(t, px, addr, dest, 1)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("upstream connections = %d for 5 client connections one after another, want 1", n)
	}
}

// TestPooledUpstreamThatChangedIsNotReused: a pooled connection the host
// closed, or wrote to, while idle is discarded when taken; the request
// goes out on a new one and gets its own answer.
func TestPooledUpstreamThatChangedIsNotReused(t *testing.T) {
	tests := []struct {
		name      string
		afterIdle func(c net.Conn) bool // true: keep the connection open
	}{
		{"closed by the host", func(c net.Conn) bool { return false }},
		{"unsolicited 408", func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
			return true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest, accepted, _ := poolUpstream(t, tt.afterIdle)
			px, addr := poolProxy(t, dest)
			oneRequest(t, px, addr, dest, 1)
			time.Sleep(150 * time.Millisecond) // the upstream acts on the idle connection
			oneRequest(t, px, addr, dest, 1)
			if n := accepted.Load(); n != 2 {
				t.Errorf("upstream connections = %d, want 2 (the changed one replaced)", n)
			}
		})
	}
}

func TestCloseClosesPooledUpstreams(t *testing.T) {
	dest, _, ended := poolUpstream(t, nil)
	px, addr := poolProxy(t, dest)
	oneRequest(t, px, addr, dest, 1)
	px.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ended.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the pooled upstream connection is still open after Close")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPoolBoundedPerDestination(t *testing.T) {
	dest, _, ended := poolUpstream(t, nil)
	var p upstreamPool
	for range poolPerDest + 2 {
		c, err := net.Dial("tcp4", dest.String())
		if err != nil {
			t.Fatal(err)
		}
		p.put(dest, &upstream{c: c.(*net.TCPConn), br: bufio.NewReader(c)})
	}
	if n := p.count(dest); n != poolPerDest {
		t.Errorf("pooled = %d, want %d", n, poolPerDest)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ended.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections over the bound closed, want 2", ended.Load())
		}
		time.Sleep(time.Millisecond)
	}
	p.close()
}
