package authz

import (
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

func TestEffectiveModes(t *testing.T) {
	const (
		off = hostproto.ModeDisabled
		aud = hostproto.ModeAudit
		enf = hostproto.ModeEnforce
	)
	item := func(mode string) *hostproto.AuthorizationItem {
		return &hostproto.AuthorizationItem{DefaultAccess: "allow", Mode: mode}
	}
	modes := func(imds, ws, hg hostproto.Mode) hostproto.Modes {
		return hostproto.Modes{IMDS: imds, WireServer: ws, HostGAPlugin: hg}
	}
	for _, tc := range []struct {
		name     string
		host     hostproto.Modes
		imds, ws *hostproto.AuthorizationItem
		want     hostproto.Modes
	}{
		{"no settings follow the host", modes(aud, enf, enf), nil, nil, modes(aud, enf, enf)},
		{"settings without mode follow the host", modes(aud, off, off), item(""), item(""), modes(aud, off, off)},
		{"settings stricter: audit to enforce", modes(aud, aud, aud), item("enforce"), item("enforce"), modes(enf, enf, enf)},
		{"settings never looser", modes(enf, enf, enf), item("audit"), item("disabled"), modes(enf, enf, enf)},
		{"settings enforce while the host is off", modes(off, off, off), item("enforce"), nil, modes(enf, off, off)},
		{"settings audit while the host is off", modes(off, off, off), nil, item("Audit"), modes(off, aud, aud)},
		{"HostGAPlugin follows WireServer settings", modes(off, aud, aud), nil, item("enforce"), modes(off, enf, enf)},
		{"HostGAPlugin follows the host's WireServer", modes(off, enf, off), nil, nil, modes(off, enf, enf)},
		{"unknown settings mode is enforced", modes(off, off, off), item("enforcing"), nil, modes(enf, off, off)},
		{"equal modes", modes(aud, enf, enf), item("audit"), item("enforce"), modes(aud, enf, enf)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EffectiveModes(tc.host, tc.imds, tc.ws); got != tc.want {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

// TestMergeModeFollowsHost: the snapshot's mode is the effective mode, with
// HostMode as the host's one source of truth.
func TestMergeModeFollowsHost(t *testing.T) {
	mode := func(m hostproto.Mode) *hostproto.Mode { return &m }
	item := func(m string) *hostproto.AuthorizationItem {
		return &hostproto.AuthorizationItem{DefaultAccess: "allow", Mode: m}
	}
	for _, tc := range []struct {
		name string
		in   Input
		want hostproto.Mode
	}{
		{"settings without mode follow the host item", Input{Host: item("audit"), Settings: item("")}, hostproto.ModeAudit},
		{"settings without mode and no host", Input{Settings: item("")}, hostproto.ModeDisabled},
		{"settings without mode follow HostMode", Input{HostMode: mode(hostproto.ModeEnforce), Settings: item("")}, hostproto.ModeEnforce},
		{"HostMode replaces the host item's mode", Input{HostMode: mode(hostproto.ModeDisabled), Host: item("enforce")}, hostproto.ModeDisabled},
		{"settings stricter than HostMode", Input{HostMode: mode(hostproto.ModeAudit), Host: item("audit"), Settings: item("enforce")}, hostproto.ModeEnforce},
		{"settings never looser than HostMode", Input{HostMode: mode(hostproto.ModeEnforce), Settings: item("disabled")}, hostproto.ModeEnforce},
		{"settings enforce with the host off", Input{HostMode: mode(hostproto.ModeDisabled), Settings: item("enforce")}, hostproto.ModeEnforce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Merge(tc.in).Mode(); got != tc.want {
				t.Errorf("mode %v; want %v", got, tc.want)
			}
		})
	}
	// HostMode is an input: a change recompiles.
	a := Merge(Input{HostMode: mode(hostproto.ModeAudit), Host: item("audit")})
	b := Merge(Input{HostMode: mode(hostproto.ModeEnforce), Host: item("audit")})
	if a.Hash() == b.Hash() {
		t.Error("a HostMode change leaves the hash unchanged")
	}
}
