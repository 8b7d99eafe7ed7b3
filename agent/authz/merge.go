package authz

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
)

// Source names where an item came from; its prefix keeps names of
// different sources apart when they are merged (I-19).
type Source uint8

// The sources of authorization.md §1, in merge order.
const (
	SourceHost Source = iota + 1
	SourceSettings
	SourceLocal
)

// Prefix returns the name prefix of the source ("host_", "settings_",
// "local_").
func (s Source) Prefix() string {
	switch s {
	case SourceHost:
		return "host_"
	case SourceSettings:
		return "settings_"
	case SourceLocal:
		return "local_"
	}
	return ""
}

func (s Source) String() string { return strings.TrimSuffix(s.Prefix(), "_") }

// Input holds every source of one endpoint's policy. A nil item means the
// source is absent. Settings and Local must come from the strict readers
// of package rulefile (ParseSettingsItem; ParseLocal or LocalFiles.Read);
// when those failed, put the error in SettingsErr or LocalErr and the
// snapshot fails closed. A missing local file (rulefile.ErrNoFile) is not
// a failure: leave both Local and LocalErr nil.
type Input struct {
	// Host is the v2 payload item (hostproto.KeyStatus.Item), compiled
	// leniently: defects are skipped and reported in Warnings.
	Host *hostproto.AuthorizationItem
	// HostMode, when set, is the host's mode for the endpoint as the
	// secure channel states it (hostproto.KeyStatus.Modes().Of(ep)); it
	// replaces Host.Mode, so that the mode comes from one source of truth
	// also for v1 payloads and a v2 payload with the secure channel off.
	HostMode *hostproto.Mode
	// Settings is the item from the extension's settings
	// (rulefile.ParseSettingsItem). An empty Mode follows the host.
	Settings    *hostproto.AuthorizationItem
	SettingsErr error
	// Local is the local rule file; its Mode is ignored (I-18).
	Local    *hostproto.AuthorizationItem
	LocalErr error
}

// Merge builds one endpoint's snapshot from its sources (project decision,
// stricter than GPA's §6.4):
//   - the mode is EffectiveMode of the host's (HostMode, else Host.Mode)
//     and the settings': settings may make it stricter, never looser, and
//     settings without a mode follow the host; a local file never sets the
//     mode; with no host mode and no settings mode the mode is disabled,
//     or enforce when a strict source failed;
//   - defaultAccess is allow only if every source that states it says allow;
//   - grants are unioned; names and references get the source prefix;
//   - a failed strict source (SettingsErr, LocalErr) yields a deny-all
//     snapshot, mode kept.
func Merge(in Input) *Snapshot {
	b := newBuilder()
	modeSet := false
	switch {
	case in.HostMode != nil:
		b.mode, modeSet = *in.HostMode, true
	case in.Host != nil:
		b.mode, modeSet = b.itemMode(SourceHost.String(), in.Host), true
	}
	if in.Settings != nil && in.Settings.Mode != "" {
		// Modes order by strictness: disabled < audit < enforce.
		if m := b.itemMode(SourceSettings.String(), in.Settings); !modeSet || m > b.mode {
			b.mode = m
		}
		modeSet = true
	}
	failed := false
	for _, e := range []struct {
		src Source
		err error
	}{{SourceSettings, in.SettingsErr}, {SourceLocal, in.LocalErr}} {
		if e.err != nil {
			failed = true
			b.warn(e.src.String(), "", fmt.Sprintf("failed, denying every request: %v", e.err))
		}
	}
	if failed {
		if !modeSet {
			b.mode = hostproto.ModeEnforce
		}
		b.failClosed = true
		b.id = mergedID(in)
		return b.finish(in)
	}

	b.defaultAllow = true
	stated := false
	if in.Host != nil {
		stated = true
		b.defaultAllow = b.itemDefaultAllow("host", in.Host)
	}
	if in.Settings != nil {
		stated = true
		b.defaultAllow = b.itemDefaultAllow("settings", in.Settings) && b.defaultAllow
	}
	if in.Local != nil && in.Local.DefaultAccess != "" {
		stated = true
		b.defaultAllow = b.itemDefaultAllow("local", in.Local) && b.defaultAllow
	}
	if !stated {
		b.defaultAllow = false
	}
	b.id = mergedID(in)

	var rules []*hostproto.Rules
	var srcs []Source
	for _, s := range []struct {
		src  Source
		item *hostproto.AuthorizationItem
	}{{SourceHost, in.Host}, {SourceSettings, in.Settings}, {SourceLocal, in.Local}} {
		if s.item != nil && s.item.Rules != nil {
			rules = append(rules, s.item.Rules)
			srcs = append(srcs, s.src)
		}
	}
	if complete(rules) {
		for i, r := range rules {
			b.addSource(srcs[i].String(), srcs[i].Prefix(), r)
		}
	} else if len(rules) > 0 {
		b.warnIncomplete()
	}
	return b.finish(in)
}

// mergedID composes the compiled id of authorization.md §6.1.
func mergedID(in Input) string {
	var parts []string
	if in.Host != nil {
		logical, local := ParseRuleID(in.Host.ID)
		if logical == "" {
			logical = "unknown"
		}
		parts = append(parts, fmt.Sprintf("%s-useLocalFileRules-%t", logical, local))
	}
	if in.Settings != nil && in.Settings.ID != "" {
		parts = append(parts, "settings-"+in.Settings.ID)
	}
	if in.Local != nil && in.Local.ID != "" {
		parts = append(parts, in.Local.ID)
	}
	return strings.Join(parts, "_")
}

// complete reports whether each of the four arrays is present in at least
// one source: GPA builds privileges only when all four are present after
// merging (authorization.md §3).
func complete(rules []*hostproto.Rules) bool {
	var p, r, i, a bool
	for _, x := range rules {
		p = p || x.Privileges != nil
		r = r || x.Roles != nil
		i = i || x.Identities != nil
		a = a || x.RoleAssignments != nil
	}
	return p && r && i && a
}

// ParseRuleID reads a host item id (authorization.md §6.1): standard base64
// of {"id": …, "useLocalFileRules": …} enables local files for the
// endpoint; any other id is the logical id itself, with local files off.
func ParseRuleID(id string) (logical string, useLocal bool) {
	id = strings.TrimSpace(id)
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil || id == "" {
		return id, false
	}
	var d struct {
		ID                string `json:"id"`
		UseLocalFileRules bool   `json:"useLocalFileRules"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return id, false
	}
	return d.ID, d.UseLocalFileRules
}
