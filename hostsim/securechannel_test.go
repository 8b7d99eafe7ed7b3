package hostsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim/guest"
)

func TestAttestation(t *testing.T) {
	e := startEmulator(t, nil)
	ws := e.Addrs().WireServer
	g := &guest.Guest{IsRoot: true}
	k, err := g.AcquireKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	other, err := g.AcquireKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, _ := sign.NewSigner(other.Key, other.GUID)
	kSigner, _ := sign.NewSigner(k.Key, k.GUID)

	// Signed with the issued but unattested key: not yet valid for requests.
	s := &guest.Guest{IsRoot: true, Signer: kSigner}
	if resp, _ := s.Do(ws, s.Request("GET", "/?comp=versions", "h", nil)); resp == nil || resp.Status != 401 || lastRecord(t, e).Reason != ReasonUnknownKey {
		t.Fatalf("request signed with an unattested key: got %+v; want 401 unknown-key", resp)
	}

	tests := []struct {
		name   string
		g      guest.Guest
		target string
		status int
		reason string
	}{
		{"unsigned", guest.Guest{IsRoot: true}, "/secure-channel/key/" + k.GUID + "/key-attestation", 401, ReasonUnsigned},
		{"signed with another issued key", guest.Guest{IsRoot: true, Signer: otherSigner}, "/secure-channel/key/" + k.GUID + "/key-attestation", 401, ReasonUnknownKey},
		{"guid never issued", guest.Guest{IsRoot: true, Signer: mustSigner(t, k.Key, "11111111-2222-3333-4444-555555555555")}, "/secure-channel/key/11111111-2222-3333-4444-555555555555/key-attestation", 401, ReasonUnknownKey},
		{"forged with the right guid", guest.Guest{IsRoot: true, Signer: mustSigner(t, otherKey, k.GUID)}, "/secure-channel/key/" + k.GUID + "/key-attestation", 401, ReasonBadSignature},
		{"valid", guest.Guest{IsRoot: true, Signer: kSigner}, "/secure-channel/key/" + k.GUID + "/key-attestation", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.g.Do(ws, tt.g.Request("POST", tt.target, guest.WireServerHost, nil))
			if err != nil {
				t.Fatal(err)
			}
			rec := lastRecord(t, e)
			if resp.Status != tt.status || rec.Reason != tt.reason || rec.Class != "attestation" {
				t.Errorf("got %d %q class %s; want %d %q attestation", resp.Status, rec.Reason, rec.Class, tt.status, tt.reason)
			}
			ks, _, err := g.Status(ws)
			if err != nil {
				t.Fatal(err)
			}
			attested := ks.KeyGUID != nil && *ks.KeyGUID == k.GUID
			if attested != (tt.status == 200) {
				t.Errorf("status keyGuid %v after %s", ks.KeyGUID, tt.name)
			}
		})
	}
	if resp, _ := s.Do(ws, s.Request("GET", "/?comp=versions", "h", nil)); resp == nil || resp.Status != 200 {
		t.Fatalf("request signed with the attested key: got %+v; want 200", resp)
	}
}

func mustSigner(t *testing.T, key, guid string) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(key, guid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRotation: a keyIncarnationId bump reports keyGuid null until a new
// key is attested; the old key stays valid until then, and only then.
func TestRotation(t *testing.T) {
	e := startEmulator(t, nil)
	ws := e.Addrs().WireServer
	g := latched(t, e)
	old := *g
	probe := func(who *guest.Guest) int {
		resp, err := who.Do(ws, who.Request("GET", "/machine/?comp=goalstate", guest.WireServerHost, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	keyGUID := func() *string {
		ks, _, err := g.Status(ws)
		if err != nil {
			t.Fatal(err)
		}
		return ks.KeyGUID
	}
	if keyGUID() == nil {
		t.Fatal("keyGuid null after attestation")
	}
	mustPatch(t, e, `{"keyIncarnationId": 2}`)
	if got := keyGUID(); got != nil {
		t.Fatalf("keyGuid %q after incarnation bump; want null", *got)
	}
	if st := probe(&old); st != 200 {
		t.Fatalf("old key during rotation: %d; want 200", st)
	}
	k2, err := g.AcquireKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	if k2.IncarnationID == nil || *k2.IncarnationID != 2 {
		t.Errorf("new key incarnationId %v; want 2", k2.IncarnationID)
	}
	if keyGUID() != nil || probe(&old) != 200 {
		t.Fatal("acquiring (not attesting) must not end the rotation")
	}
	if st, err := g.Attest(ws, k2); err != nil || st != 200 {
		t.Fatalf("attest new key: %d %v", st, err)
	}
	if got := keyGUID(); got == nil || *got != k2.GUID {
		t.Fatalf("keyGuid %v; want %s", got, k2.GUID)
	}
	// Requests signed with the previous key just before the attestation
	// are honoured for the grace period (30 s by default) ...
	if st := probe(&old); st != 200 || lastRecord(t, e).KeyGUID != old.Signer.GUID() {
		t.Fatalf("old key within the grace period after the new one was attested: %d; want 200", st)
	}
	// ... and refused after it.
	mustPatch(t, e, `{"clockOffsetSeconds": 31}`)
	if st := probe(&old); st != 401 || lastRecord(t, e).Reason != ReasonUnknownKey {
		t.Fatalf("old key after the grace period: %d; want 401 unknown-key", st)
	}
	newG := &guest.Guest{IsRoot: true, Signer: mustSigner(t, k2.Key, k2.GUID)}
	if st := probe(newG); st != 200 {
		t.Fatalf("new key: %d; want 200", st)
	}
	// A host without grace refuses the previous key at once.
	mustPatch(t, e, `{"previousKeyGraceSeconds": 0, "keyIncarnationId": 3}`)
	k3, err := g.AcquireKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := g.Attest(ws, k3); err != nil || st != 200 {
		t.Fatalf("attest third key: %d %v", st, err)
	}
	if st := probe(newG); st != 401 || lastRecord(t, e).Reason != ReasonUnknownKey {
		t.Fatalf("previous key with no grace: %d; want 401 unknown-key", st)
	}
	if p, err := DecodePatch([]byte(`{"previousKeyGraceSeconds": -1}`)); err == nil {
		if _, err := e.Apply(p); err == nil {
			t.Error("a negative grace was accepted")
		}
	}
}

func TestNextKeyAndHostDate(t *testing.T) {
	e := startEmulator(t, nil)
	const guid = "e3882f98-da8d-4410-8394-06c23462781c"
	mustPatch(t, e, `{"nextKey": {"guid": "`+guid+`", "key": "`+otherKey+`"}, "clockOffsetSeconds": 3600}`)
	g := &guest.Guest{IsRoot: true}
	k, err := g.AcquireKey(e.Addrs().WireServer)
	if err != nil {
		t.Fatal(err)
	}
	if k.GUID != guid || k.Key != otherKey {
		t.Errorf("issued %s; want the chosen guid and key", k)
	}
	k2, _ := g.AcquireKey(e.Addrs().WireServer)
	if k2 == nil || k2.GUID == guid {
		t.Errorf("nextKey must be used once; second key %v", k2)
	}
	_, h, err := g.Status(e.Addrs().WireServer)
	if err != nil {
		t.Fatal(err)
	}
	d, err := time.Parse(hostproto.DateLayout, h.Get("x-ms-azure-host-date"))
	if err != nil {
		t.Fatalf("x-ms-azure-host-date %q: %v", h.Get("x-ms-azure-host-date"), err)
	}
	if skew := time.Until(d); skew < 59*time.Minute || skew > 61*time.Minute {
		t.Errorf("host date %v is %v ahead; want about 1h (clockOffsetSeconds)", d, skew)
	}
}

// TestStatusRendering: the served payload follows modes and validates with
// hostproto; a guest derives the expected modes and state string.
func TestStatusRendering(t *testing.T) {
	tests := []struct {
		name   string
		patch  string
		state  string
		modes  hostproto.Modes
		legacy string // v1 secureChannelState
	}{
		{"v2 all enforce", `{}`, "WireServer Enforce -  IMDS Enforce - HostGA Enforce", hostproto.Modes{IMDS: 2, WireServer: 2, HostGAPlugin: 2}, ""},
		{"v2 ws audit imds disabled", `{"modes": {"imds": "disabled", "wireServer": "audit", "hostGAPlugin": "audit"}}`, "WireServer Audit -  IMDS Disabled - HostGA Audit", hostproto.Modes{IMDS: 0, WireServer: 1, HostGAPlugin: 1}, ""},
		{"v2 imds item removed", `{"authorizationRules": {"imds": null}}`, "WireServer Enforce -  IMDS Disabled - HostGA Enforce", hostproto.Modes{IMDS: 0, WireServer: 2, HostGAPlugin: 2}, ""},
		{"v2 switched off", `{"secureChannelEnabled": false}`, "disabled", hostproto.Modes{}, ""},
		{"v1 all enforce", `{"version": "1.0"}`, "wireserverandimds", hostproto.Modes{IMDS: 2, WireServer: 2, HostGAPlugin: 2}, "WireserverAndImds"},
		{"v1 imds audit", `{"version": "1.0", "modes": {"imds": "audit"}}`, "wireserver", hostproto.Modes{IMDS: 1, WireServer: 2, HostGAPlugin: 2}, "Wireserver"},
		{"v1 disabled", `{"version": "1.0", "modes": {"imds": "disabled", "wireServer": "disabled", "hostGAPlugin": "disabled"}}`, "disabled", hostproto.Modes{}, "Disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmulator(t, nil)
			mustPatch(t, e, tt.patch)
			g := &guest.Guest{IsRoot: true}
			ks, _, err := g.Status(e.Addrs().WireServer)
			if err != nil {
				t.Fatal(err)
			}
			if err := ks.Validate(); err != nil {
				t.Fatalf("served payload does not validate: %v", err)
			}
			if got := ks.StateString(); got != tt.state {
				t.Errorf("state string %q; want %q", got, tt.state)
			}
			if got := ks.Modes(); got != tt.modes {
				t.Errorf("guest modes %+v; want %+v", got, tt.modes)
			}
			if tt.legacy != "" && (ks.SecureChannelState == nil || *ks.SecureChannelState != tt.legacy) {
				t.Errorf("secureChannelState %v; want %q", ks.SecureChannelState, tt.legacy)
			}
			if v := e.View(); v.StateString != tt.state {
				t.Errorf("View().StateString %q; want %q", v.StateString, tt.state)
			}
		})
	}
}

func TestStatusOverride(t *testing.T) {
	e := startEmulator(t, nil)
	raw := `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"vtpm","version":"3.0","keyGuid":null}`
	mustPatch(t, e, `{"statusOverride": `+raw+`}`)
	g := &guest.Guest{IsRoot: true}
	resp, err := g.Do(e.Addrs().WireServer, g.Request("GET", "/secure-channel/status", guest.WireServerHost, nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != raw {
		t.Errorf("served %s; want the override verbatim", resp.Body)
	}
	if v := e.View(); v.GuestModes != nil || !strings.HasPrefix(v.StateString, "invalid:") {
		t.Errorf("View of an invalid payload: guestModes %v stateString %q", v.GuestModes, v.StateString)
	}
	mustPatch(t, e, `{"statusOverride": null}`)
	resp, _ = g.Do(e.Addrs().WireServer, g.Request("GET", "/secure-channel/status", guest.WireServerHost, nil))
	var ks hostproto.KeyStatus
	if resp == nil || json.Unmarshal(resp.Body, &ks) != nil || ks.Version != "2.0" {
		t.Errorf("after clearing the override: %v", resp)
	}
}
