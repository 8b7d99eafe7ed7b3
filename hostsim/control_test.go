package hostsim

import (
	"encoding/json"
	"fmt"
	"github.com/mspguest/msp/agent/sign"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

// TestControlBadInput: every bad control request gets 400 (404 for an
// unknown path) and a message that names the field.
func TestControlBadInput(t *testing.T) {
	e := startEmulator(t, nil)
	srv := httptest.NewServer(e.ControlHandler())
	defer srv.Close()
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"unknown field", "POST", "/state", `{"mode": {"imds": "audit"}}`, 400, `unknown field \"mode\"`},
		{"unknown nested field", "POST", "/state", `{"modes": {"hostga": "audit"}}`, 400, `unknown field \"hostga\"`},
		{"unknown item field", "POST", "/state", `{"authorizationRules": {"imds": {"idd": "x"}}}`, 400, `unknown field \"idd\"`},
		{"bad mode", "POST", "/state", `{"modes": {"imds": "enforcing"}}`, 400, `want disabled, audit or enforce`},
		{"bad version", "POST", "/state", `{"version": "3.0"}`, 400, `version \"3.0\"`},
		{"bad reject status", "POST", "/state", `{"rejectStatus": 200}`, 400, `rejectStatus 200`},
		{"negative skew", "POST", "/state", `{"dateSkewSeconds": -1}`, 400, `dateSkewSeconds -1`},
		{"item mode", "POST", "/state", `{"authorizationRules": {"wireserver": {"mode": "audit"}}}`, 400, `set modes instead`},
		{"bad next key", "POST", "/state", `{"nextKey": {"guid": "x", "key": "00"}}`, 400, `nextKey.guid`},
		{"wrong type", "POST", "/state", `{"rootOnly": "yes"}`, 400, `rootOnly`},
		{"trailing data", "POST", "/state", `{} {}`, 400, `trailing data`},
		{"not json", "POST", "/state", `modes=audit`, 400, `invalid character`},
		{"empty body", "POST", "/state", ``, 400, `empty body`},
		{"fault endpoint", "POST", "/faults", `{"endpoint": "ims", "kind": "http500"}`, 400, `endpoint \"ims\"`},
		{"fault kind", "POST", "/faults", `{"endpoint": "imds", "kind": "slow"}`, 400, `kind \"slow\"`},
		{"fault delay", "POST", "/faults", `{"endpoint": "imds", "kind": "delay"}`, 400, `delayMs 0`},
		{"fault count", "POST", "/faults", `{"endpoint": "imds", "kind": "refuse", "count": -2}`, 400, `count -2`},
		{"fault unknown field", "POST", "/faults", `{"endpoint": "imds", "kind": "refuse", "times": 2}`, 400, `unknown field \"times\"`},
		{"since", "GET", "/verifications?since=abc", ``, 400, `since \"abc\"`},
		{"unknown path", "GET", "/keys", ``, 404, `no such control endpoint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Errorf("got %d %s; want %d containing %s", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
	if got := e.State(); got.Modes != DefaultState().Modes || got.Version != "2.0" {
		t.Errorf("rejected patches changed the state: %+v", got)
	}
}

// TestControlStateMergeAndReset: POST /state merges, POST /reset restores
// the start-up state, keys, faults and records.
func TestControlStateMergeAndReset(t *testing.T) {
	e := startEmulator(t, nil)
	latched(t, e)
	mustPatch(t, e, `{"modes": {"imds": "audit"}}`)
	mustPatch(t, e, `{"rootOnly": false, "authorizationRules": {"hostga": {"id": "hg-2", "defaultAccess": "deny"}}}`)
	if err := e.SetFault(Fault{Endpoint: "hostga", Kind: FaultHTTP500}); err != nil {
		t.Fatal(err)
	}
	v := e.View()
	want := hostproto.Modes{IMDS: hostproto.ModeAudit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}
	if v.Modes != want || v.RootOnly || v.AuthorizationRules.HostGA.ID != "hg-2" || v.KeyGUID == nil || len(v.Faults) != 1 {
		t.Fatalf("merged view %s", jsonString(v))
	}
	if !strings.Contains(string(v.StatusPayload), `"hostga":{"defaultAccess":"deny","mode":"enforce","id":"hg-2"}`) {
		t.Errorf("status payload %s: want the hostga item with the mode from modes", v.StatusPayload)
	}
	e.Reset()
	v = e.View()
	if v.Modes != DefaultState().Modes || !v.RootOnly || v.KeyGUID != nil || len(v.Faults) != 0 || len(e.Verifications(0)) != 0 {
		t.Errorf("after reset: %s", jsonString(v))
	}
}

// TestPatchRoundTrip: a Patch built in Go encodes to what DecodePatch reads
// (the control client relies on it).
func TestPatchRoundTrip(t *testing.T) {
	p := Patch{
		Modes:              &ModesPatch{IMDS: ptr(hostproto.ModeAudit)},
		Version:            ptr("1.0"),
		AuthorizationRules: &RulesPatch{IMDS: SetItem(nil), HostGA: SetItem(&hostproto.AuthorizationItem{ID: "x"})},
		StatusOverride:     json.RawMessage(`null`),
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePatch(b)
	if err != nil {
		t.Fatalf("DecodePatch(%s): %v", b, err)
	}
	if *got.Modes.IMDS != hostproto.ModeAudit || !got.AuthorizationRules.IMDS.Set || got.AuthorizationRules.IMDS.Item != nil ||
		got.AuthorizationRules.HostGA.Item.ID != "x" || got.AuthorizationRules.WireServer.Set {
		t.Errorf("round trip of %s: %+v", b, got)
	}
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"modes": {"imds": "audit", "wireServer": "enforce", "hostGAPlugin": "disabled"}}`,
		`{"version": "1.0", "secureChannelEnabled": false, "keyIncarnationId": 4}`,
		`{"authorizationRules": {"imds": null, "wireserver": {"id": "a", "defaultAccess": "deny", "rules": {"privileges": []}}}}`,
		`{"statusOverride": {"x": 1}, "nextKey": {"guid": "e3882f98-da8d-4410-8394-06c23462781c", "key": "` + otherKey + `"}}`,
		`{"dateSkewSeconds": 30, "rejectStatus": 403, "rootOnly": false}`, `null`, `[]`, `{"modes": null}`,
		// Each of these must be refused; accepted, they break the
		// independent state invariant below.
		`{"rejectStatus": 200}`, `{"rejectStatus": 600}`, `{"dateSkewSeconds": -1}`, `{"version": "3.0"}`,
		`{"authorizationRules": {"imds": {"id": "a", "mode": "enforce"}}}`,
		`{"nextKey": {"guid": "00000000-0000-0000-0000-000000000000", "key": "` + otherKey + `"}}`,
		`{"nextKey": {"guid": "e3882f98-da8d-4410-8394-06c23462781c", "key": "abc"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePatch(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "state: ") || p != nil {
				t.Fatalf("rejection of %q: %v, patch %v; want a state: error and no patch", data, err, p)
			}
			return
		}
		// An accepted patch yields a valid state, applying it twice is
		// applying it once, and it survives the control client's encoding
		// (json.Marshal then DecodePatch) with the same effect.
		once := DefaultState()
		once.apply(p)
		if err := stateInvariant(once, p); err != nil {
			t.Fatalf("patch %q accepted but: %v", data, err)
		}
		twice := once.clone()
		twice.apply(p)
		if a, b := jsonString(once), jsonString(twice); a != b {
			t.Fatalf("patch %q not idempotent:\n%s\n%s", data, a, b)
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted patch %q does not marshal: %v", data, err)
		}
		p2, err := DecodePatch(enc)
		if err != nil {
			t.Fatalf("re-encoded patch %s (from %q) rejected: %v", enc, data, err)
		}
		again := DefaultState()
		again.apply(p2)
		if a, b := jsonString(once), jsonString(again); a != b {
			t.Fatalf("patch %q and its re-encoding %s differ in effect:\n%s\n%s", data, enc, a, b)
		}
	})
}

// stateInvariant restates, independently of Patch.validate, what every
// state the control API can produce must satisfy.
func stateInvariant(s State, p *Patch) error {
	switch {
	case s.RejectStatus < 400 || s.RejectStatus > 599:
		return fmt.Errorf("rejectStatus %d is not an HTTP error", s.RejectStatus)
	case s.DateSkewSeconds < 0:
		return fmt.Errorf("dateSkewSeconds %d is negative", s.DateSkewSeconds)
	case s.PreviousKeyGraceSeconds < 0:
		return fmt.Errorf("previousKeyGraceSeconds %d is negative", s.PreviousKeyGraceSeconds)
	case s.Version != "1.0" && s.Version != "2.0":
		return fmt.Errorf("version %q", s.Version)
	case len(s.StatusOverride) > 0 && !json.Valid(s.StatusOverride):
		return fmt.Errorf("statusOverride is not JSON")
	}
	for _, it := range []*hostproto.AuthorizationItem{s.AuthorizationRules.IMDS, s.AuthorizationRules.WireServer, s.AuthorizationRules.HostGA} {
		if it != nil && it.Mode != "" {
			return fmt.Errorf("authorization item %q carries its own mode %q", it.ID, it.Mode)
		}
	}
	if k := p.NextKey; k != nil {
		if _, err := sign.NewSigner(k.Key, k.GUID); err != nil || k.GUID == "00000000-0000-0000-0000-000000000000" {
			return fmt.Errorf("nextKey %s cannot be issued: %v", k.GUID, err)
		}
	}
	return nil
}

func FuzzDecodeFault(f *testing.F) {
	for _, s := range []string{`{"endpoint": "imds", "kind": "delay", "delayMs": 5, "count": 1}`, `{"endpoint": "hostgaplugin", "kind": "none"}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fl, err := DecodeFault(data); err == nil && fl.ep == 0 {
			t.Fatalf("accepted %q without an endpoint", data)
		}
	})
}
