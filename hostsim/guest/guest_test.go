package guest

import (
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/sign"
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
// verifies over the headers before it, claims in GPA's exact form.
func TestRequestSignsWhatItSends(t *testing.T) {
	s, _ := sign.NewSigner("4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59", "e3882f98-da8d-4410-8394-06c23462781c")
	g := &Guest{Signer: s}
	r := g.Request("POST", "/machine/?comp=goalstate", WireServerHost, []byte("x"))
	if err := s.Verify(r.Method, r.Target, r.Headers, r.Body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v, _ := r.Get("x-ms-azure-host-claims"); v != `{ "isRoot": "false"}` {
		t.Errorf("claims %q; want GPA's form", v)
	}
}
