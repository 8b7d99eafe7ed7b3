package hostsim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mspguest/msp/hostsim/guest"
)

func TestLoopbackOnly(t *testing.T) {
	ok := Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "[::1]:0"}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"imds on the real address", func(c *Config) { c.IMDSAddr = "169.254.169.254:80" }, `imds address "169.254.169.254:80": not a loopback address`},
		{"wireserver on the real address", func(c *Config) { c.WireServerAddr = "168.63.129.16:80" }, `wireserver address "168.63.129.16:80": not a loopback`},
		{"all interfaces", func(c *Config) { c.HostGAAddr = ":32526" }, `hostga address ":32526": not a loopback`},
		{"unspecified v6", func(c *Config) { c.ControlAddr = "[::]:8089" }, `control address "[::]:8089": not a loopback`},
		{"host name", func(c *Config) { c.IMDSAddr = "localhost:80" }, `not a loopback`},
		{"no port", func(c *Config) { c.IMDSAddr = "127.0.0.1" }, `want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			e, err := Start(c)
			if err == nil {
				e.Close()
				t.Fatal("Start succeeded; want a loopback error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			}
		})
	}
	e, err := Start(ok)
	if err != nil {
		t.Fatalf("loopback v4 and ::1: %v", err)
	}
	e.Close()

	bad := DefaultState()
	bad.Version = "2"
	c := ok
	c.Initial = &bad
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), `initial state: version "2"`) {
		t.Errorf("invalid initial state: %v; want an error naming version", err)
	}
}

// TestCloseDuringDelay: Close does not wait out an injected delay.
func TestCloseDuringDelay(t *testing.T) {
	e, err := Start(Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetFault(Fault{Endpoint: "hostga", Kind: FaultDelay, DelayMs: 60000}); err != nil {
		t.Fatal(err)
	}
	go (&guest.Guest{Timeout: 30 * time.Second}).Do(e.Addrs().HostGA, (&guest.Guest{}).Request("GET", "/health", "h", nil))
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	e.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v during a 60 s delay; want it prompt", d)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestVerifyLogRedacts: the JSON-lines log has one record per request and
// never the full signature or key.
func TestVerifyLogRedacts(t *testing.T) {
	var buf lockedBuffer
	e, err := Start(Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0", VerifyLog: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	g := &guest.Guest{IsRoot: true}
	k, err := g.Latch(e.Addrs().WireServer)
	if err != nil {
		t.Fatal(err)
	}
	req := g.Request("GET", "/?comp=versions", "h", nil)
	sig := req.Headers[len(req.Headers)-1].Value
	if _, err := g.Do(e.Addrs().WireServer, req); err != nil {
		t.Fatal(err)
	}
	buf.mu.Lock()
	out := buf.b.String()
	buf.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 { // key, attestation, request
		t.Fatalf("%d lines; want 3:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	full := sig[strings.LastIndex(sig, " ")+1:]
	if strings.Contains(out, full) || strings.Contains(strings.ToLower(out), strings.ToLower(k.Key)) {
		t.Error("verify log contains a full signature or the key")
	}
	if !strings.Contains(out, full[:8]+"...") {
		t.Error("verify log lacks the shortened signature")
	}
}

// TestKeepAliveAndExpect: a Go client reuses connections, and a request
// with Expect: 100-continue gets its interim answer.
func TestKeepAliveAndExpect(t *testing.T) {
	e := startEmulator(t, stateWith(0))
	hc := &http.Client{}
	for i := 0; i < 3; i++ {
		resp, err := hc.Get("http://" + e.Addrs().HostGA + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c, err := net.Dial("tcp", e.Addrs().WireServer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"))
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q; want 100 Continue", line)
	}
	br.ReadString('\n')
	c.Write([]byte("ok"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after 100-continue: %v %v", resp, err)
	}
}
