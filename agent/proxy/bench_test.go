package proxy

import (
	"net/netip"
	"testing"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/internal/loadgen"
)

// BenchmarkKeepAlive is the proxy's per-request path without eBPF (the
// record is given) against a fixed-answer upstream: one keep-alive client,
// signed IMDS GETs. allocs/op shows what pooling leaves.
func BenchmarkKeepAlive(b *testing.B) {
	dest := fixedUpstream(b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"compute\": {}}\r\n")
	rec := bpf.Record{UID: 1000, GID: 1000, TGID: 1, Dest: dest}
	px, err := New(Config{Addr: "127.0.0.1:0", Records: fixedRecords{rec}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{dest: hostproto.IMDS}})
	if err != nil {
		b.Fatal(err)
	}
	px.SetPolicy(hostproto.IMDS, authz.Unrestricted(hostproto.ModeEnforce))
	px.SetSigner(testSigner(b))
	ln, err := px.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go px.Serve(ln)
	defer px.Close()
	c, err := loadgen.Dial(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if status, err := c.Do(req); err != nil || status != 200 {
			b.Fatalf("status %d, %v", status, err)
		}
	}
}

func testSigner(tb testing.TB) *sign.Signer {
	s, err := sign.NewSigner("4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59", "e3882f98-da8d-4410-8394-06c23462781c")
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
