package hostsim

import (
	"bytes"
	"crypto/hmac"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim/guest"
)

// sendWithAuth sends a signed IMDS request whose authorization value is
// replaced by edit(value) and returns the newest record.
func sendWithAuth(t *testing.T, e *Emulator, g *guest.Guest, edit func(string) string) (int, Record) {
	t.Helper()
	req := g.Request("GET", "/metadata/instance?api-version=2021-02-01", "169.254.169.254", nil, rawhttp.Header{Name: "Metadata", Value: "true"})
	last := &req.Headers[len(req.Headers)-1]
	if !strings.EqualFold(last.Name, hostproto.HeaderAuthorization) {
		t.Fatalf("last header %s; want the authorization", last.Name)
	}
	last.Value = edit(last.Value)
	resp, err := g.Do(e.Addrs().IMDS, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status, lastRecord(t, e)
}

// TestEmulatorRejectsAnyAlteredSignature: every single-character change of
// the 64 hex digits (to another hex digit, so it still parses), a
// truncated and an overlong signature, a flipped guid digit and a
// signature by an issued but not attested key are rejected; the untouched
// header is accepted.
func TestEmulatorRejectsAnyAlteredSignature(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	g := latched(t, e)
	if status, rec := sendWithAuth(t, e, g, func(v string) string { return v }); status != 200 || !rec.Valid {
		t.Fatalf("untouched: %d %+v", status, rec)
	}
	for i := 0; i < 64; i++ {
		status, rec := sendWithAuth(t, e, g, func(v string) string {
			b := []byte(v)
			p := len(b) - 64 + i
			b[p] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[p])] // another hex digit
			return string(b)
		})
		if status != 401 || rec.Reason != ReasonBadSignature {
			t.Errorf("digit %d changed: %d %s; want 401 %s", i, status, rec.Reason, ReasonBadSignature)
		}
	}
	for _, tt := range []struct {
		name, reason string
		edit         func(string) string
	}{
		{"truncated", ReasonBadSignature, func(v string) string { return v[:len(v)-1] }},
		{"truncated to 32 bytes of hex", ReasonBadSignature, func(v string) string { return v[:len(v)-32] }},
		{"overlong", ReasonBadSignature, func(v string) string { return v + "0" }},
		{"overlong by a byte", ReasonBadSignature, func(v string) string { return v + "00" }},
		{"other guid", ReasonUnknownKey, func(v string) string {
			f := strings.Fields(v)
			return f[0] + " 00000000-0000-4000-8000-000000000000 " + f[2]
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, rec := sendWithAuth(t, e, g, tt.edit); status != 401 || rec.Reason != tt.reason {
				t.Errorf("%d %s; want 401 %s", status, rec.Reason, tt.reason)
			}
		})
	}
	t.Run("issued but not attested key", func(t *testing.T) {
		k, err := g.AcquireKey(e.Addrs().WireServer)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := sign.NewSigner(k.Key, k.GUID)
		g2 := &guest.Guest{IsRoot: true, Signer: s}
		if status, rec := sendWithAuth(t, e, g2, func(v string) string { return v }); status != 401 || rec.Reason != ReasonUnknownKey {
			t.Errorf("%d %s; want 401 %s", status, rec.Reason, ReasonUnknownKey)
		}
		// Its valid MAC presented under the attested key's guid.
		if status, rec := sendWithAuth(t, e, g2, func(v string) string { return strings.Replace(v, k.GUID, g.Signer.GUID(), 1) }); status != 401 || rec.Reason != ReasonBadSignature {
			t.Errorf("under the attested guid: %d %s; want 401 %s", status, rec.Reason, ReasonBadSignature)
		}
	})
}

// TestEmulatorMACComparisonIsHMACEqual: the emulator compares MACs with
// hmac.Equal (constant time), and that comparator alone decides: told
// "equal" it accepts a MAC that differs in its first byte (so nothing
// compared a prefix or length before it), told "different" it rejects the
// right MAC; it always sees the whole 32-byte MACs.
func TestEmulatorMACComparisonIsHMACEqual(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	if reflect.ValueOf(e.macEqual).Pointer() != reflect.ValueOf(hmac.Equal).Pointer() {
		t.Fatal("Start did not install hmac.Equal as the MAC comparator")
	}
	g := latched(t, e)
	var seen [][2][]byte
	setEqual := func(answer bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		seen = nil
		e.macEqual = func(a, b []byte) bool {
			seen = append(seen, [2][]byte{bytes.Clone(a), bytes.Clone(b)})
			return answer
		}
	}
	firstDigit := func(v string) string {
		b := []byte(v)
		p := len(b) - 64
		b[p] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[p])]
		return string(b)
	}
	setEqual(true)
	status, rec := sendWithAuth(t, e, g, firstDigit)
	e.mu.Lock()
	calls := seen
	e.mu.Unlock()
	if status != 200 || !rec.Valid {
		t.Errorf("comparator said equal, emulator answered %d %s: something else decided", status, rec.Reason)
	}
	if len(calls) != 1 || len(calls[0][0]) != 32 || len(calls[0][1]) != 32 || bytes.Equal(calls[0][0], calls[0][1]) {
		t.Errorf("comparator calls %x; want one call with two different 32-byte MACs", calls)
	}
	setEqual(false)
	if status, rec := sendWithAuth(t, e, g, func(v string) string { return v }); status != 401 || rec.Reason != ReasonBadSignature {
		t.Errorf("comparator said different, emulator answered %d %s", status, rec.Reason)
	}
}

// TestEmulatorDateWindowBothWays: with a 60 s window a date 2 minutes in
// the past or in the future is rejected; 30 s either way is accepted. The
// host clock offset counts (host-protocol.md §7.4).
func TestEmulatorDateWindowBothWays(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	g := latched(t, e)
	mustPatch(t, e, `{"dateSkewSeconds": 60, "clockOffsetSeconds": 3600}`)
	host := time.Now().Add(time.Hour)
	for _, tt := range []struct {
		name   string
		date   time.Time
		reason string
	}{
		{"now", host, ""},
		{"30s past", host.Add(-30 * time.Second), ""},
		{"30s future", host.Add(30 * time.Second), ""},
		{"2m past", host.Add(-2 * time.Minute), ReasonDateSkew},
		{"2m future", host.Add(2 * time.Minute), ReasonDateSkew},
		{"local clock, an hour behind the host", time.Now(), ReasonDateSkew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dg := withDate(*g, tt.date)
			if _, rec := sendWithAuth(t, e, &dg, func(v string) string { return v }); rec.Reason != tt.reason {
				t.Errorf("reason %q; want %q", rec.Reason, tt.reason)
			}
		})
	}
}

// TestBootstrapOnlyExactSecureChannelRequests: only GET
// /secure-channel/status and POST /secure-channel/key (any case, any
// query) are bootstrap; a path that merely starts with them or the other
// method is an ordinary signed request.
func TestBootstrapOnlyExactSecureChannelRequests(t *testing.T) {
	guid := "e3882f98-da8d-4410-8394-06c23462781c"
	for _, tt := range []struct {
		method, target string
		want           class
	}{
		{"GET", "/secure-channel/status", classBootstrap},
		{"GET", "/Secure-Channel/Status?x=1", classBootstrap},
		{"POST", "/secure-channel/key", classBootstrap},
		{"POST", "/secure-channel/key?a", classBootstrap},
		{"GET", "/secure-channel/statusx", classSigned},
		{"GET", "/secure-channel/status/", classSigned},
		{"GET", "/secure-channel/status/x", classSigned},
		{"GET", "/secure-channel/stat", classSigned},
		{"POST", "/secure-channel/status", classSigned},
		{"HEAD", "/secure-channel/status", classSigned},
		{"GET", "/secure-channel/key", classSigned},
		{"PUT", "/secure-channel/key", classSigned},
		{"POST", "/secure-channel/keys", classSigned},
		{"POST", "/secure-channel/key/", classSigned},
		{"POST", "/secure-channel/key/x", classSigned},
		{"POST", "/secure-channel/key/" + guid, classSigned},
		{"POST", "/secure-channel/key/" + guid + "/key-attestation", classAttestation},
		{"POST", "/secure-channel/key/" + guid + "/key-attestationx", classSigned},
		{"GET", "/secure-channel/key/" + guid + "/key-attestation", classSigned},
		{"POST", "//secure-channel/key", classSigned},
		{"POST", "/x/secure-channel/key", classSigned},
	} {
		if got := classify(hostproto.WireServer, tt.method, tt.target); got != tt.want {
			t.Errorf("%s %s: class %s; want %s", tt.method, tt.target, classNames[got], classNames[tt.want])
		}
		if got := classify(hostproto.HostGAPlugin, tt.method, tt.target); got != classSigned {
			t.Errorf("%s %s on HostGAPlugin: class %s; the secure channel is WireServer's", tt.method, tt.target, classNames[got])
		}
	}
	// End to end: an unsigned near-miss is rejected in enforce mode.
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	g := &guest.Guest{IsRoot: true}
	resp, err := g.Do(e.Addrs().WireServer, g.Request("GET", "/secure-channel/statusx", guest.WireServerHost, nil))
	if err != nil || resp.Status != 401 {
		t.Errorf("unsigned GET /secure-channel/statusx: %v %v; want 401", resp, err)
	}
}
