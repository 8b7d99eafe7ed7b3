package authz

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

func TestMerge(t *testing.T) {
	item := func(mode, access string) *hostproto.AuthorizationItem {
		return &hostproto.AuthorizationItem{Mode: mode, DefaultAccess: access}
	}
	for _, tc := range []struct {
		name       string
		in         Input
		mode       hostproto.Mode
		allow      bool
		failClosed bool
	}{
		{"nothing", Input{}, hostproto.ModeDisabled, false, false},
		{"host only", Input{Host: item("audit", "allow")}, hostproto.ModeAudit, true, false},
		{"settings stricter mode", Input{Host: item("audit", "allow"), Settings: item("enforce", "allow")}, hostproto.ModeEnforce, true, false},
		{"host stricter mode", Input{Host: item("enforce", "allow"), Settings: item("disabled", "allow")}, hostproto.ModeEnforce, true, false},
		{"settings deny wins", Input{Host: item("enforce", "allow"), Settings: item("enforce", "deny")}, hostproto.ModeEnforce, false, false},
		{"host deny wins over local allow", Input{Host: item("enforce", "deny"), Local: &hostproto.AuthorizationItem{DefaultAccess: "allow"}}, hostproto.ModeEnforce, false, false},
		{"local deny wins", Input{Host: item("enforce", "allow"), Local: &hostproto.AuthorizationItem{DefaultAccess: "deny"}}, hostproto.ModeEnforce, false, false},
		{"local without defaultAccess", Input{Host: item("enforce", "allow"), Local: &hostproto.AuthorizationItem{}}, hostproto.ModeEnforce, true, false},
		{"host odd defaultAccess", Input{Host: item("enforce", "Allow ")}, hostproto.ModeEnforce, false, false},
		{"settings failed", Input{Host: item("audit", "allow"), SettingsErr: errFake}, hostproto.ModeAudit, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Merge(tc.in)
			if s.Mode() != tc.mode || s.DefaultAllow() != tc.allow || s.FailClosed() != tc.failClosed {
				t.Errorf("mode %v allow %v failClosed %v; want %v %v %v", s.Mode(), s.DefaultAllow(), s.FailClosed(), tc.mode, tc.allow, tc.failClosed)
			}
		})
	}
}

var errFake = errors.New("settings: imds.mode \"enforcing\": want disabled, audit or enforce")

func TestMergeUnionAndCompleteness(t *testing.T) {
	host := &hostproto.AuthorizationItem{Mode: "enforce", DefaultAccess: "allow", Rules: &hostproto.Rules{
		Privileges: []hostproto.Privilege{{Name: "mi", Path: "/metadata/identity"}},
	}}
	settings := mustItem(t, `{"defaultAccess":"allow","rules":{"privileges":[],"roles":[],
	  "identities":[{"name":"a","userName":"alice"}],"roleAssignments":[]}}`)
	s := Merge(Input{Host: host, Settings: &settings})
	// The host's privilege exists (arrays are complete after merging) and
	// restricts, though nobody is granted it.
	if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/identity"}, alice); d.Verdict != Deny || d.Privilege != "host_mi" {
		t.Errorf("decision %+v; want deny by host_mi", d)
	}
	alone := Merge(Input{Host: host})
	if alone.Privileges() != 0 || len(alone.Warnings()) != 1 {
		t.Errorf("incomplete host: %d privileges, warnings %q; want 0 and one warning", alone.Privileges(), alone.Warnings())
	}
}

func TestParseRuleID(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		id      string
		logical string
		local   bool
	}{
		{"imds-profile-v3", "imds-profile-v3", false},
		{b64(`{"id":"p1","useLocalFileRules":true}`), "p1", true},
		{" " + b64(`{"id":"p1","useLocalFileRules":true}`) + "\n", "p1", true},
		{b64(`{"id":"p2"}`), "p2", false},
		{b64(`{}`), "", false},
		{b64(`not json`), b64(`not json`), false},
		{"", "", false},
	} {
		logical, local := ParseRuleID(tc.id)
		if logical != tc.logical || local != tc.local {
			t.Errorf("ParseRuleID(%q) = %q, %v; want %q, %v", tc.id, logical, local, tc.logical, tc.local)
		}
	}
}

func TestMergedID(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"id":"p1","useLocalFileRules":true}`))
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Host: &hostproto.AuthorizationItem{ID: "plain"}}, "plain-useLocalFileRules-false"},
		{Input{Host: &hostproto.AuthorizationItem{ID: b64}, Local: &hostproto.AuthorizationItem{ID: "l7"}}, "p1-useLocalFileRules-true_l7"},
		{Input{Host: &hostproto.AuthorizationItem{}}, "unknown-useLocalFileRules-false"},
		{Input{Settings: &hostproto.AuthorizationItem{ID: "s"}}, "settings-s"},
	} {
		if got := Merge(tc.in).ID(); got != tc.want {
			t.Errorf("ID = %q; want %q", got, tc.want)
		}
	}
}
