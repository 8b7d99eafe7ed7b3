package hostsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
)

// State is the emulator's test-controlled configuration. Modes is the
// single source of truth: verification follows it and the served status
// payload (v1 secureChannelState or v2 authorizationRules modes) is rendered
// from it.
type State struct {
	// Modes is each endpoint's enforcement: disabled ignores signatures,
	// audit serves and records the verdict, enforce rejects.
	Modes hostproto.Modes `json:"modes"`
	// Version of the status payload: "1.0" or "2.0".
	Version string `json:"version"`
	// SecureChannelEnabled is the v2 master switch as served. The
	// emulator's own verification follows Modes regardless, so a test can
	// present an inconsistent host on purpose.
	SecureChannelEnabled bool `json:"secureChannelEnabled"`
	// AuthorizationRules are the v2 items; their mode field is rendered
	// from Modes and must not be set here.
	AuthorizationRules Rules `json:"authorizationRules"`
	// KeyIncarnationID is served in the status and stamped on issued keys.
	// Changing it starts a rotation (host-protocol.md §6.2).
	KeyIncarnationID uint32 `json:"keyIncarnationId"`
	// DateSkewSeconds is the freshness window on x-ms-azure-host-date
	// (host-protocol.md §9); 0 switches the date check off.
	DateSkewSeconds int `json:"dateSkewSeconds"`
	// ClockOffsetSeconds shifts the emulator's host clock relative to the
	// local clock, so that guest clock synchronisation (§7.4) is testable.
	ClockOffsetSeconds int `json:"clockOffsetSeconds"`
	// RejectStatus is the HTTP status of an enforce-mode rejection.
	RejectStatus int `json:"rejectStatus"`
	// RootOnly makes WireServer and HostGAPlugin answer 403 not-root to
	// requests whose claims say isRoot false (enforce mode, non-exempt
	// paths).
	RootOnly bool `json:"rootOnly"`
	// PreviousKeyGraceSeconds is how long, after a new key is attested,
	// requests signed with the previously attested key are still accepted
	// (0: not at all). The spec is silent on the host's behaviour; with no
	// grace every rotation races requests already signed and in flight,
	// for any guest implementation, so the default models a host that
	// honours them for 30 s (inferred).
	PreviousKeyGraceSeconds int `json:"previousKeyGraceSeconds"`
	// StatusOverride, when set, is served verbatim by
	// GET /secure-channel/status instead of the rendered payload: a way to
	// present invalid payloads (host-protocol.md §11).
	StatusOverride json.RawMessage `json:"statusOverride,omitempty"`
}

// Rules holds the v2 authorization items; a nil item is omitted from the
// payload.
type Rules struct {
	IMDS       *hostproto.AuthorizationItem `json:"imds"`
	WireServer *hostproto.AuthorizationItem `json:"wireserver"`
	HostGA     *hostproto.AuthorizationItem `json:"hostga"`
}

// DefaultState is the start-up state: v2, secure channel enabled, every
// endpoint enforced (default closed), 401 rejections, root-only WireServer,
// no date check.
func DefaultState() State {
	return State{
		Modes:                hostproto.Modes{IMDS: hostproto.ModeEnforce, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce},
		Version:              hostproto.Version2,
		SecureChannelEnabled: true,
		AuthorizationRules: Rules{
			IMDS:       &hostproto.AuthorizationItem{DefaultAccess: "allow", ID: "imds-profile-v1"},
			WireServer: &hostproto.AuthorizationItem{DefaultAccess: "allow", ID: "wireserver-profile-v1"},
			HostGA:     &hostproto.AuthorizationItem{DefaultAccess: "allow", ID: "hostga-profile-v1"},
		},
		KeyIncarnationID: 1,
		RejectStatus:     401,
		RootOnly:         true,

		PreviousKeyGraceSeconds: 30,
	}
}

// Patch is the body of POST /state: every field present is merged into the
// state, absent fields are kept.
type Patch struct {
	Modes                *ModesPatch `json:"modes,omitempty"`
	Version              *string     `json:"version,omitempty"`
	SecureChannelEnabled *bool       `json:"secureChannelEnabled,omitempty"`
	AuthorizationRules   *RulesPatch `json:"authorizationRules,omitempty"`
	KeyIncarnationID     *uint32     `json:"keyIncarnationId,omitempty"`
	DateSkewSeconds      *int        `json:"dateSkewSeconds,omitempty"`
	ClockOffsetSeconds   *int        `json:"clockOffsetSeconds,omitempty"`
	RejectStatus         *int        `json:"rejectStatus,omitempty"`
	RootOnly             *bool       `json:"rootOnly,omitempty"`
	// PreviousKeyGraceSeconds sets State.PreviousKeyGraceSeconds.
	PreviousKeyGraceSeconds *int            `json:"previousKeyGraceSeconds,omitempty"`
	StatusOverride          json.RawMessage `json:"statusOverride,omitempty"` // JSON null clears it
	// NextKey fixes the guid and key material of the next
	// POST /secure-channel/key (once); otherwise both are random.
	NextKey *NextKey `json:"nextKey,omitempty"`
}

// ModesPatch sets any of the three endpoint modes.
type ModesPatch struct {
	IMDS         *hostproto.Mode `json:"imds,omitempty"`
	WireServer   *hostproto.Mode `json:"wireServer,omitempty"`
	HostGAPlugin *hostproto.Mode `json:"hostGAPlugin,omitempty"`
}

// RulesPatch sets or (with JSON null) removes v2 authorization items.
type RulesPatch struct {
	IMDS       ItemPatch `json:"imds,omitzero"`
	WireServer ItemPatch `json:"wireserver,omitzero"`
	HostGA     ItemPatch `json:"hostga,omitzero"`
}

// ItemPatch distinguishes an absent item (Set false) from JSON null (Set
// true, Item nil, which removes the item).
type ItemPatch struct {
	Set  bool
	Item *hostproto.AuthorizationItem
}

// SetItem returns a patch that replaces an item; nil removes it.
func SetItem(it *hostproto.AuthorizationItem) ItemPatch { return ItemPatch{Set: true, Item: it} }

// MarshalJSON writes the item or null.
func (p ItemPatch) MarshalJSON() ([]byte, error) { return json.Marshal(p.Item) }

// UnmarshalJSON reads an item strictly (unknown fields are errors) or null.
func (p *ItemPatch) UnmarshalJSON(b []byte) error {
	p.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		p.Item = nil
		return nil
	}
	var it hostproto.AuthorizationItem
	if err := decodeStrict(b, &it); err != nil {
		return err
	}
	p.Item = &it
	return nil
}

// NextKey is a test-chosen key for the next issuance.
type NextKey struct {
	GUID string `json:"guid"`
	Key  string `json:"key"`
}

// DecodePatch reads a POST /state body. Unknown fields and bad values are
// errors that name the field and the accepted values.
func DecodePatch(body []byte) (*Patch, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New(`state: empty body: send a JSON object such as {"modes": {"imds": "audit"}}`)
	}
	var p Patch
	if err := decodeStrict(body, &p); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &p, nil
}

// decodeStrict decodes exactly one JSON value, rejecting unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w (fix the JSON; unknown fields are rejected)", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object: send one object")
	}
	return nil
}

func (p *Patch) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if p.Version != nil && *p.Version != hostproto.Version1 && *p.Version != hostproto.Version2 {
		add("version %q: want \"1.0\" or \"2.0\" (use statusOverride for an invalid payload)", *p.Version)
	}
	if p.RejectStatus != nil && (*p.RejectStatus < 400 || *p.RejectStatus > 599) {
		add("rejectStatus %d: want an HTTP error status 400-599", *p.RejectStatus)
	}
	if p.DateSkewSeconds != nil && *p.DateSkewSeconds < 0 {
		add("dateSkewSeconds %d: want 0 (off) or a positive window in seconds", *p.DateSkewSeconds)
	}
	if p.PreviousKeyGraceSeconds != nil && *p.PreviousKeyGraceSeconds < 0 {
		add("previousKeyGraceSeconds %d: want 0 (the previous key is refused at once) or a number of seconds", *p.PreviousKeyGraceSeconds)
	}
	if r := p.AuthorizationRules; r != nil {
		for _, it := range []struct {
			name string
			p    ItemPatch
		}{{"imds", r.IMDS}, {"wireserver", r.WireServer}, {"hostga", r.HostGA}} {
			if it.p.Item != nil && it.p.Item.Mode != "" {
				add("authorizationRules.%s.mode %q: leave it out and set modes instead (modes is the source of truth)", it.name, it.p.Item.Mode)
			}
		}
	}
	if len(p.StatusOverride) > 0 && !json.Valid(p.StatusOverride) {
		add("statusOverride: not valid JSON")
	}
	if k := p.NextKey; k != nil {
		if !hostproto.ValidGUID(k.GUID) || k.GUID == hostproto.NilGUID {
			add("nextKey.guid %q: want a non-nil GUID such as e3882f98-da8d-4410-8394-06c23462781c", k.GUID)
		}
		if _, err := hostproto.DecodeKeyHex(k.Key); err != nil {
			add("nextKey.key: %v", err)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// apply merges a validated patch into s. It reports whether the key
// incarnation changed.
func (s *State) apply(p *Patch) (rotated bool) {
	if m := p.Modes; m != nil {
		if m.IMDS != nil {
			s.Modes.IMDS = *m.IMDS
		}
		if m.WireServer != nil {
			s.Modes.WireServer = *m.WireServer
		}
		if m.HostGAPlugin != nil {
			s.Modes.HostGAPlugin = *m.HostGAPlugin
		}
	}
	if p.Version != nil {
		s.Version = *p.Version
	}
	if p.SecureChannelEnabled != nil {
		s.SecureChannelEnabled = *p.SecureChannelEnabled
	}
	if r := p.AuthorizationRules; r != nil {
		setItem(&s.AuthorizationRules.IMDS, r.IMDS)
		setItem(&s.AuthorizationRules.WireServer, r.WireServer)
		setItem(&s.AuthorizationRules.HostGA, r.HostGA)
	}
	if p.KeyIncarnationID != nil && *p.KeyIncarnationID != s.KeyIncarnationID {
		s.KeyIncarnationID = *p.KeyIncarnationID
		rotated = true
	}
	if p.DateSkewSeconds != nil {
		s.DateSkewSeconds = *p.DateSkewSeconds
	}
	if p.ClockOffsetSeconds != nil {
		s.ClockOffsetSeconds = *p.ClockOffsetSeconds
	}
	if p.RejectStatus != nil {
		s.RejectStatus = *p.RejectStatus
	}
	if p.RootOnly != nil {
		s.RootOnly = *p.RootOnly
	}
	if p.PreviousKeyGraceSeconds != nil {
		s.PreviousKeyGraceSeconds = *p.PreviousKeyGraceSeconds
	}
	if p.StatusOverride != nil {
		if bytes.Equal(bytes.TrimSpace(p.StatusOverride), []byte("null")) {
			s.StatusOverride = nil
		} else {
			s.StatusOverride = bytes.Clone(p.StatusOverride)
		}
	}
	return rotated
}

func setItem(dst **hostproto.AuthorizationItem, p ItemPatch) {
	if !p.Set {
		return
	}
	if p.Item == nil {
		*dst = nil
		return
	}
	it := *p.Item
	*dst = &it
}

// validate checks a complete state (Config.Initial) with the rules of a
// patch.
func (s *State) validate() error {
	p := Patch{Version: &s.Version, RejectStatus: &s.RejectStatus, DateSkewSeconds: &s.DateSkewSeconds,
		PreviousKeyGraceSeconds: &s.PreviousKeyGraceSeconds, StatusOverride: s.StatusOverride}
	r := Rules{}
	if s.AuthorizationRules != r {
		p.AuthorizationRules = &RulesPatch{IMDS: SetItem(s.AuthorizationRules.IMDS), WireServer: SetItem(s.AuthorizationRules.WireServer), HostGA: SetItem(s.AuthorizationRules.HostGA)}
	}
	return p.validate()
}

// clone returns a deep-enough copy for handing out under no lock.
func (s State) clone() State {
	s.StatusOverride = bytes.Clone(s.StatusOverride)
	for _, p := range []**hostproto.AuthorizationItem{&s.AuthorizationRules.IMDS, &s.AuthorizationRules.WireServer, &s.AuthorizationRules.HostGA} {
		if *p != nil {
			it := **p
			*p = &it
		}
	}
	return s
}
