package guest

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim/hostsig"
)

// TestDoRefusesNonLoopback: the test guest never dials the real host
// addresses (or anything else off loopback).
func TestDoRefusesNonLoopback(t *testing.T) {
	g := &Guest{IsRoot: true}
	for _, addr := range []string{"169.254.169.254:80", "168.63.129.16:80", "168.63.129.16:32526", "10.0.0.1:80", "localhost:80"} {
		if _, err := g.Do(addr, g.Request("GET", "/", "h", nil)); err == nil || !strings.Contains(err.Error(), "want a loopback ip:port") {
			t.Errorf("Do(%s): %v; want a loopback refusal", addr, err)
		}
	}
}

// TestRequestSignsWhatItSends: the authorization header is last and
// carries the MAC the host's own implementation (hostsig, which shares no
// code with the guest's signer) computes over the headers before it;
// claims in GPA's exact form.
func TestRequestSignsWhatItSends(t *testing.T) {
	const keyHex = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"
	const guid = "e3882f98-da8d-4410-8394-06c23462781c"
	s, _ := sign.NewSigner(keyHex, guid)
	g := &Guest{Signer: s}
	r := g.Request("POST", "/machine/?comp=goalstate&b=2&A=1", WireServerHost, []byte("x"), rawhttp.Header{Name: "X-Dup", Value: "1"}, rawhttp.Header{Name: "x-DUP", Value: " 2 "})
	last := r.Headers[len(r.Headers)-1]
	if last.Name != hostsig.AuthorizationName {
		t.Fatalf("last header %s; want the authorization", last.Name)
	}
	key, _ := hex.DecodeString(keyHex)
	hs := make([]hostsig.Header, 0, len(r.Headers)-1)
	for _, h := range r.Headers[:len(r.Headers)-1] {
		hs = append(hs, hostsig.Header{Name: h.Name, Value: h.Value})
	}
	if want := hostsig.Authorization(guid, hostsig.MAC(key, r.Method, r.Target, hs, r.Body)); last.Value != want {
		t.Errorf("authorization %q; the host computes %q", last.Value, want)
	}
	if v, _ := r.Get("x-ms-azure-host-claims"); v != `{ "isRoot": "false"}` {
		t.Errorf("claims %q; want GPA's form", v)
	}
}
