package hostproto

import "testing"

// TestExempt pins host-protocol.md §8.8: method case-sensitive, the whole
// target ASCII-lower-cased, nothing decoded.
func TestExempt(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"PUT", "/vmagentlog", true},
		{"PUT", "/vmAgentLog", true},
		{"PUT", "/VMAGENTLOG", true},
		{"POST", "/machine/?comp=telemetrydata", true},
		{"POST", "/MACHINE/?COMP=TELEMETRYDATA", true},
		{"put", "/vmagentlog", false},
		{"GET", "/vmAgentLog", false},
		{"POST", "/vmagentlog", false},
		{"PUT", "/vmagentlog/", false},
		{"POST", "/machine?comp=telemetrydata", false},
		{"POST", "/machine/?comp=telemetrydata&x", false},
		{"POST", "/machine/?comp=telemetrydata&x=1", false},
		{"POST", "/machine/%3Fcomp=telemetrydata", false},
	} {
		if got := Exempt(tc.method, tc.target); got != tc.want {
			t.Errorf("Exempt(%s, %q) = %v; want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

func TestClaims(t *testing.T) {
	if Claims(true) != `{ "isRoot": "true"}` || Claims(false) != `{ "isRoot": "false"}` {
		t.Fatalf("Claims = %q, %q", Claims(true), Claims(false))
	}
}
