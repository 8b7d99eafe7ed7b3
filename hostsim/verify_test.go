package hostsim

import (
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim/guest"
)

const otherKey = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"

// TestEnforceRejectionReasons covers every rejection reason in enforce
// mode (issue 3 §5): the status, the reason header, the body and the
// record name the same single reason.
func TestEnforceRejectionReasons(t *testing.T) {
	e := startEmulator(t, nil)
	mustPatch(t, e, `{"dateSkewSeconds": 60}`)
	g := latched(t, e)
	other, _ := sign.NewSigner(otherKey, "e3882f98-da8d-4410-8394-06c23462781c")
	a := e.Addrs()

	tests := []struct {
		name   string
		addr   string
		guest  guest.Guest
		target string
		tamper func(*rawhttp.Request)
		status int
		reason string
	}{
		{"valid imds", a.IMDS, *g, "/metadata/instance?api-version=2021-02-01", nil, 200, ""},
		{"valid wireserver", a.WireServer, *g, "/machine/?comp=goalstate", nil, 200, ""},
		{"unsigned", a.IMDS, guest.Guest{IsRoot: true}, "/metadata/instance?api-version=2021-02-01", nil, 401, ReasonUnsigned},
		{"unknown key", a.IMDS, guest.Guest{IsRoot: true, Signer: other}, "/metadata/instance?api-version=2021-02-01", nil, 401, ReasonUnknownKey},
		{"bad signature: target changed after signing", a.IMDS, *g, "/metadata/instance?api-version=2021-02-01", func(r *rawhttp.Request) { r.Target += "&format=json" }, 401, ReasonBadSignature},
		{"bad signature: header added after signing", a.WireServer, *g, "/machine/?comp=goalstate", func(r *rawhttp.Request) {
			r.Headers = append(r.Headers, rawhttp.Header{Name: "X-Extra", Value: "1"})
		}, 401, ReasonBadSignature},
		{"bad signature: malformed header", a.IMDS, *g, "/metadata/instance?api-version=2021-02-01", func(r *rawhttp.Request) {
			r.Headers[len(r.Headers)-1].Value = "Azure-HMAC-SHA256 not-a-guid abc"
		}, 401, ReasonBadSignature},
		{"date skew", a.IMDS, withDate(*g, time.Now().Add(-time.Hour)), "/metadata/instance?api-version=2021-02-01", nil, 401, ReasonDateSkew},
		{"date missing", a.IMDS, withNoDate(*g), "/metadata/instance?api-version=2021-02-01", nil, 401, ReasonDateSkew},
		{"missing claims", a.IMDS, withNoClaims(*g), "/metadata/instance?api-version=2021-02-01", nil, 401, ReasonMissingClaims},
		{"not root on wireserver", a.WireServer, withRoot(*g, false), "/machine/?comp=goalstate", nil, 403, ReasonNotRoot},
		{"not root on hostga", a.HostGA, withRoot(*g, false), "/vmSettings", nil, 403, ReasonNotRoot},
		{"not root is fine on imds", a.IMDS, withRoot(*g, false), "/metadata/instance?api-version=2021-02-01", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.guest.Request("GET", tt.target, "169.254.169.254", nil, rawhttp.Header{Name: "Metadata", Value: "true"})
			if tt.tamper != nil {
				tt.tamper(req)
			}
			resp, err := tt.guest.Do(tt.addr, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status {
				t.Fatalf("status %d; want %d (body %s)", resp.Status, tt.status, resp.Body)
			}
			rec := lastRecord(t, e)
			if rec.Reason != tt.reason || rec.Valid != (tt.reason == "") || rec.Status != tt.status {
				t.Errorf("record reason %q valid %v status %d; want %q, %v, %d", rec.Reason, rec.Valid, rec.Status, tt.reason, tt.reason == "", tt.status)
			}
			if tt.reason == "" {
				return
			}
			if got := resp.Header.Get(HeaderReason); got != tt.reason {
				t.Errorf("%s = %q; want %q", HeaderReason, got, tt.reason)
			}
			if !strings.Contains(string(resp.Body), `"error":"`+tt.reason+`"`) {
				t.Errorf("body %s does not name %q", resp.Body, tt.reason)
			}
		})
	}
}

func withDate(g guest.Guest, d time.Time) guest.Guest { g.Date = d; return g }
func withNoDate(g guest.Guest) guest.Guest            { g.NoDate = true; return g }
func withNoClaims(g guest.Guest) guest.Guest          { g.NoClaims = true; return g }
func withRoot(g guest.Guest, root bool) guest.Guest   { g.IsRoot = root; return g }

// TestModes: disabled ignores, audit serves and records, enforce rejects;
// each endpoint follows its own mode.
func TestModes(t *testing.T) {
	const (
		D = hostproto.ModeDisabled
		A = hostproto.ModeAudit
		E = hostproto.ModeEnforce
	)
	tests := []struct {
		mode   hostproto.Mode
		signed bool
		status int
		reason string
	}{
		{D, false, 200, ReasonUnsigned},
		{D, true, 200, ""},
		{A, false, 200, ReasonUnsigned},
		{A, true, 200, ""},
		{E, false, 401, ReasonUnsigned},
		{E, true, 200, ""},
	}
	for _, ep := range hostproto.Endpoints {
		for _, tt := range tests {
			name := ep.String() + "/" + tt.mode.String()
			if tt.signed {
				name += "/signed"
			} else {
				name += "/unsigned"
			}
			t.Run(name, func(t *testing.T) {
				e := startEmulator(t, stateWith(tt.mode))
				g := latched(t, e)
				if !tt.signed {
					g.Signer = nil
				}
				addr, target := endpointProbe(e, ep)
				resp, err := g.Do(addr, g.Request("GET", target, "host", nil, rawhttp.Header{Name: "Metadata", Value: "true"}))
				if err != nil {
					t.Fatal(err)
				}
				rec := lastRecord(t, e)
				if resp.Status != tt.status || rec.Reason != tt.reason || rec.Mode != tt.mode.String() || rec.Signed != tt.signed {
					t.Errorf("got status %d reason %q mode %s signed %v; want %d %q %s %v", resp.Status, rec.Reason, rec.Mode, rec.Signed, tt.status, tt.reason, tt.mode, tt.signed)
				}
			})
		}
	}
}

func endpointProbe(e *Emulator, ep hostproto.Endpoint) (addr, target string) {
	a := e.Addrs()
	switch ep {
	case hostproto.IMDS:
		return a.IMDS, "/metadata/instance?api-version=2021-02-01"
	case hostproto.WireServer:
		return a.WireServer, "/?comp=versions"
	}
	return a.HostGA, "/health"
}

// TestAuditRecordsNotRoot: audit never rejects, not even not-root.
func TestAuditRecordsNotRoot(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeAudit))
	g := latched(t, e)
	g.IsRoot = false
	resp, err := g.Do(e.Addrs().WireServer, g.Request("GET", "/?comp=versions", "h", nil))
	if err != nil {
		t.Fatal(err)
	}
	if rec := lastRecord(t, e); resp.Status != 200 || rec.Reason != ReasonNotRoot {
		t.Errorf("got %d %q; want 200 not-root recorded", resp.Status, rec.Reason)
	}
}

func TestRejectStatusAndRootOnlyToggle(t *testing.T) {
	e := startEmulator(t, nil)
	g := latched(t, e)
	ws := e.Addrs().WireServer
	mustPatch(t, e, `{"rejectStatus": 403, "rootOnly": false}`)
	resp, _ := (&guest.Guest{IsRoot: true}).Do(ws, (&guest.Guest{IsRoot: true}).Request("GET", "/?comp=versions", "h", nil))
	if resp == nil || resp.Status != 403 {
		t.Fatalf("unsigned with rejectStatus 403: got %+v; want 403", resp)
	}
	g.IsRoot = false
	resp, _ = g.Do(ws, g.Request("GET", "/?comp=versions", "h", nil))
	if resp == nil || resp.Status != 200 {
		t.Fatalf("isRoot false with rootOnly off: got %+v; want 200", resp)
	}
}

// TestExemptAndBootstrap: the §8.8 exemptions (method plus whole lower-cased
// path-and-query) and the bootstrap calls are served unsigned in enforce.
func TestExemptAndBootstrap(t *testing.T) {
	e := startEmulator(t, nil)
	ws := e.Addrs().WireServer
	tests := []struct {
		method, target string
		root           bool
		status         int
		class          string
	}{
		{"PUT", "/vmAgentLog", true, 200, "exempt"},
		{"PUT", "/VMAGENTLOG", false, 200, "exempt"},
		{"POST", "/machine/?comp=telemetrydata", true, 200, "exempt"},
		{"POST", "/machine/?comp=TelemetryData", true, 200, "exempt"},
		{"POST", "/machine?comp=telemetrydata", true, 401, "signed"}, // not the exact path
		{"POST", "/machine/?comp=telemetrydata&x=1", true, 401, "signed"},
		{"GET", "/vmAgentLog", true, 401, "signed"},
		{"GET", "/secure-channel/status", false, 200, "bootstrap"},
		{"GET", "/secure-channel/status?x=1", true, 200, "bootstrap"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			g := &guest.Guest{IsRoot: tt.root}
			resp, err := g.Do(ws, g.Request(tt.method, tt.target, guest.WireServerHost, []byte("<log/>")))
			if err != nil {
				t.Fatal(err)
			}
			rec := lastRecord(t, e)
			if resp.Status != tt.status || rec.Class != tt.class {
				t.Errorf("got %d class %s; want %d %s", resp.Status, rec.Class, tt.status, tt.class)
			}
		})
	}
	g := &guest.Guest{IsRoot: true}
	if _, err := g.AcquireKey(ws); err != nil {
		t.Errorf("unsigned key acquisition in enforce: %v", err)
	}
}

// TestChunkedAndDuplicateHeaders: the emulator verifies what it received,
// so a chunked body and duplicate headers (last one signed) verify.
func TestChunkedAndDuplicateHeaders(t *testing.T) {
	e := startEmulator(t, nil)
	g := latched(t, e)
	req := g.Request("PUT", "/status", "168.63.129.16:32526", []byte(`{"status":"ok"}`),
		rawhttp.Header{Name: "Transfer-Encoding", Value: "chunked"},
		rawhttp.Header{Name: "X-Dup", Value: "first"},
		rawhttp.Header{Name: "x-dup", Value: "last"})
	resp, err := g.Do(e.Addrs().HostGA, req)
	if err != nil {
		t.Fatal(err)
	}
	rec := lastRecord(t, e)
	if resp.Status != 200 || !rec.Valid || rec.BodyLength != 15 {
		t.Fatalf("got %d valid %v bodyLength %d (%s); want 200, valid, 15", resp.Status, rec.Valid, rec.BodyLength, rec.Reason)
	}
	names := ""
	for _, h := range rec.Headers {
		names += h.Name + ","
	}
	if !strings.Contains(names, "Transfer-Encoding,X-Dup,x-dup,") {
		t.Errorf("recorded headers %s: want wire order with duplicates", names)
	}
}
