package hostproto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const v2Example = `{
  "authorizationScheme": "Azure-HMAC-SHA256",
  "keyDeliveryMethod": "http",
  "keyIncarnationId": 1,
  "keyGuid": "e3882f98-da8d-4410-8394-06c23462781c",
  "requiredClaimsHeaderPairs": ["isRoot"],
  "secureChannelEnabled": true,
  "version": "2.0",
  "futureField": {"anything": [1, 2]},
  "authorizationRules": {
    "wireserver": { "defaultAccess": "deny",  "mode": "enforce", "id": "ws-profile-v3", "rules": { "privileges": [], "roles": [], "identities": [], "roleAssignments": [] } },
    "imds":       { "defaultAccess": "allow", "mode": "audit",   "id": "imds-profile-v1", "extra": true },
    "hostga":     { "defaultAccess": "allow", "mode": "enforce", "id": "hostga-profile-v1" }
  }
}`

const v1Example = `{
  "authorizationScheme": "Azure-HMAC-SHA256",
  "keyDeliveryMethod": "http",
  "keyIncarnationId": 1,
  "keyGuid": null,
  "requiredClaimsHeaderPairs": ["isRoot"],
  "secureChannelState": "WireserverAndImds",
  "version": "1.0"
}`

func TestParseKeyStatusExamples(t *testing.T) {
	s, err := ParseKeyStatus([]byte(v2Example))
	if err != nil {
		t.Fatalf("v2 example: %v", err)
	}
	if s.KeyGUID == nil || *s.KeyGUID != "e3882f98-da8d-4410-8394-06c23462781c" {
		t.Errorf("keyGuid = %v", s.KeyGUID)
	}
	if got := s.RuleID(HostGAPlugin); got != "hostga-profile-v1" {
		t.Errorf("RuleID(hostga) = %q; want hostga-profile-v1", got)
	}
	if got := s.Item(HostGAPlugin).ID; got != "ws-profile-v3" {
		t.Errorf("Item(hostga).ID = %q; want the wireserver item ws-profile-v3", got)
	}
	if !s.Item(WireServer).Rules.Complete() {
		t.Errorf("wireserver rules with four empty arrays must be complete")
	}
	if s.Item(IMDS).Rules.Complete() {
		t.Errorf("imds item without rules must not be complete")
	}

	s1, err := ParseKeyStatus([]byte(v1Example))
	if err != nil {
		t.Fatalf("v1 example: %v", err)
	}
	if s1.KeyGUID != nil {
		t.Errorf("keyGuid null decoded as %q", *s1.KeyGUID)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string // substring of the error; "" means valid
		vtpm    bool
	}{
		{"v2 ok", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"2.0","secureChannelEnabled":false,"keyGuid":null}`, "", false},
		{"v1 ok, delivery case-insensitive", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"HTTP","version":"1.0","secureChannelState":"disabled"}`, "", false},
		{"both switches missing", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"2.0"}`, "both missing", false},
		{"bad state", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"audit"}`, `secureChannelState "audit"`, false},
		{"v1 needs state", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelEnabled":true}`, "required with version 1.0", false},
		{"v2 needs enabled", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"2.0","secureChannelState":"Wireserver"}`, "required with version 2.0", false},
		{"scheme", `{"authorizationScheme":"HMAC","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"disabled"}`, `authorizationScheme "HMAC"`, false},
		{"missing scheme", `{"keyDeliveryMethod":"http","version":"1.0","secureChannelState":"disabled"}`, `authorizationScheme ""`, false},
		{"vtpm", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"vtpm","version":"1.0","secureChannelState":"disabled"}`, "vtpm key delivery is not supported", true},
		{"unknown delivery", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"carrier-pigeon","version":"1.0","secureChannelState":"disabled"}`, `keyDeliveryMethod "carrier-pigeon"`, false},
		{"unknown version", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"3.0","secureChannelState":"disabled"}`, `version "3.0"`, false},
		{"bad guid", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"disabled","keyGuid":"nope"}`, `keyGuid "nope"`, false},
		{"type error", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"disabled","keyIncarnationId":-1}`, "keyIncarnationId", false},
		{"not json", `<html>`, "key status", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyStatus([]byte(tt.payload))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v; want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want error containing %q", err, tt.want)
			}
			if got := errors.Is(err, ErrVTPMUnsupported); got != tt.vtpm {
				t.Errorf("errors.Is(err, ErrVTPMUnsupported) = %v; want %v", got, tt.vtpm)
			}
		})
	}
}

func v2(enabled bool, rules string) *KeyStatus {
	p := `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"2.0","secureChannelEnabled":` + map[bool]string{true: "true", false: "false"}[enabled]
	if rules != "" {
		p += `,"authorizationRules":` + rules
	}
	s, err := ParseKeyStatus([]byte(p + "}"))
	if err != nil {
		panic(err)
	}
	return s
}

func v1(state string) *KeyStatus {
	s, err := ParseKeyStatus([]byte(`{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"` + state + `"}`))
	if err != nil {
		panic(err)
	}
	return s
}

func TestModesAndStateString(t *testing.T) {
	const (
		D = ModeDisabled
		A = ModeAudit
		E = ModeEnforce
	)
	tests := []struct {
		name  string
		s     *KeyStatus
		modes Modes
		state string
	}{
		{"nothing yet", nil, Modes{}, "Unknown"},
		{"v2 all enforce", v2(true, `{"wireserver":{"mode":"enforce"},"imds":{"mode":"Enforce"},"hostga":{"mode":"audit"}}`), Modes{E, E, E}, "WireServer Enforce -  IMDS Enforce - HostGA Enforce"},
		{"v2 ws audit imds missing", v2(true, `{"wireserver":{"mode":"audit"}}`), Modes{D, A, A}, "WireServer Audit -  IMDS Disabled - HostGA Audit"},
		{"v2 hostga item ignored", v2(true, `{"hostga":{"mode":"enforce"}}`), Modes{D, D, D}, "WireServer Disabled -  IMDS Disabled - HostGA Disabled"},
		{"v2 unknown mode enforced, GPA word Disabled", v2(true, `{"imds":{"mode":"enforcing"},"wireserver":{"mode":""}}`), Modes{E, E, E}, "WireServer Disabled -  IMDS Disabled - HostGA Disabled"},
		{"v2 disabled switch", v2(false, `{"wireserver":{"mode":"enforce"},"imds":{"mode":"enforce"}}`), Modes{}, "disabled"},
		{"v2 enabled without rules", v2(true, ""), Modes{}, "disabled"},
		{"v1 WireserverAndImds", v1("WireserverAndImds"), Modes{E, E, E}, "wireserverandimds"},
		{"v1 Wireserver", v1("Wireserver"), Modes{A, E, E}, "wireserver"},
		{"v1 Disabled", v1("Disabled"), Modes{}, "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Modes(); got != tt.modes {
				t.Errorf("Modes() = %+v; want %+v", got, tt.modes)
			}
			if got := tt.s.StateString(); got != tt.state {
				t.Errorf("StateString() = %q; want %q", got, tt.state)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"disabled", ModeDisabled, true}, {"AUDIT", ModeAudit, true}, {"Enforce", ModeEnforce, true},
		{"", ModeEnforce, false}, {"enforcing", ModeEnforce, false}, {"off", ModeEnforce, false},
	}
	for _, tt := range tests {
		got, ok := ParseMode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	var m Mode
	if err := m.UnmarshalText([]byte("enforcing")); err == nil || !strings.Contains(err.Error(), "want disabled, audit or enforce") {
		t.Errorf("UnmarshalText(enforcing) = %v", err)
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]Endpoint{"imds": IMDS, "WireServer": WireServer, "hostga": HostGAPlugin, "hostgaplugin": HostGAPlugin} {
		if got, err := ParseEndpoint(in); err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseEndpoint("storage"); err == nil {
		t.Error("ParseEndpoint(storage) succeeded")
	}
}

func TestSummarizeJSON(t *testing.T) {
	got, err := json.Marshal(v2(true, `{"wireserver":{"mode":"enforcing"},"imds":{"mode":"audit"}}`).Summarize())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"secureChannelState":"WireServer Disabled -  IMDS Audit - HostGA Disabled","effectiveModes":{"imds":"audit","wireServer":"enforce","hostGAPlugin":"enforce"}}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
