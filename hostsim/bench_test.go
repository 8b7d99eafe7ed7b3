package hostsim

import (
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim/guest"
)

// BenchmarkCheck is the verification of one signed IMDS request (claims,
// signature, date) without the network.
func BenchmarkCheck(b *testing.B) {
	s, _ := sign.NewSigner(otherKey, "e3882f98-da8d-4410-8394-06c23462781c")
	g := &guest.Guest{Signer: s, IsRoot: true}
	req := g.Request("GET", "/metadata/instance?api-version=2021-02-01&format=json", "169.254.169.254", nil,
		rawhttp.Header{Name: "User-Agent", Value: "curl/8.5.0"}, rawhttp.Header{Name: "Metadata", Value: "true"})
	in := parseReceived(b, req)
	key, _ := hostproto.DecodeKeyHex(otherKey)
	lookup := func(string) []byte { return key }
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if v := check(in, lookup, nil, now, time.Minute); v.reason != "" {
			b.Fatal(v.reason)
		}
	}
}

// BenchmarkSignedRoundTrip is one signed WireServer request over a new
// loopback connection, verified, served and recorded.
func BenchmarkSignedRoundTrip(b *testing.B) {
	e, err := Start(Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	g := &guest.Guest{IsRoot: true}
	if _, err := g.Latch(e.Addrs().WireServer); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := g.Do(e.Addrs().WireServer, g.Request("GET", "/?comp=versions", guest.WireServerHost, nil))
		if err != nil || resp.Status != 200 {
			b.Fatalf("%v %v", resp, err)
		}
	}
}
