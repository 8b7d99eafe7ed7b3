package hostproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Scheme is the only authorization scheme of the protocol.
const Scheme = "Azure-HMAC-SHA256"

// Payload versions.
const (
	Version1 = "1.0"
	Version2 = "2.0"
)

// KeyStatus is the response of GET /secure-channel/status
// (host-protocol.md §3.1). Optional fields are pointers so that "missing"
// and "zero" stay distinguishable.
type KeyStatus struct {
	AuthorizationScheme       string              `json:"authorizationScheme"`
	KeyDeliveryMethod         string              `json:"keyDeliveryMethod"`
	KeyIncarnationID          *uint32             `json:"keyIncarnationId,omitempty"`
	KeyGUID                   *string             `json:"keyGuid"`
	RequiredClaimsHeaderPairs []string            `json:"requiredClaimsHeaderPairs"`
	SecureChannelState        *string             `json:"secureChannelState,omitempty"`
	SecureChannelEnabled      *bool               `json:"secureChannelEnabled,omitempty"`
	Version                   string              `json:"version"`
	AuthorizationRules        *AuthorizationRules `json:"authorizationRules,omitempty"`
}

// ValidationError lists everything wrong with a host payload. Each problem
// names the field in the host's vocabulary.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid key status: " + strings.Join(e.Problems, "; ")
}

// ErrVTPMUnsupported marks a payload that asks for vTPM key delivery, which
// no implementation supports (host-protocol.md §3.3).
var ErrVTPMUnsupported = errors.New("keyDeliveryMethod vtpm is not supported")

// ParseKeyStatus decodes and validates a status payload. Unknown fields are
// ignored. On error the caller must keep its previous state.
func ParseKeyStatus(data []byte) (*KeyStatus, error) {
	var s KeyStatus
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("key status: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate applies the checks of host-protocol.md §3.3 with the project's
// stricter decisions. The error is a *ValidationError; one whose problems
// include vTPM delivery also matches ErrVTPMUnsupported.
func (s *KeyStatus) Validate() error {
	var problems []string
	vtpm := false
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if s.AuthorizationScheme != Scheme {
		add("authorizationScheme %q: want %q", s.AuthorizationScheme, Scheme)
	}
	switch strings.ToLower(s.KeyDeliveryMethod) {
	case "http":
	case "vtpm":
		vtpm = true
		add("keyDeliveryMethod %q: vtpm key delivery is not supported, only http", s.KeyDeliveryMethod)
	default:
		add("keyDeliveryMethod %q: want http", s.KeyDeliveryMethod)
	}
	if s.SecureChannelEnabled == nil && s.SecureChannelState == nil {
		add("secureChannelEnabled and secureChannelState are both missing: one is required")
	}
	if s.SecureChannelState != nil {
		switch strings.ToLower(*s.SecureChannelState) {
		case "disabled", "wireserver", "wireserverandimds":
		default:
			add("secureChannelState %q: want Disabled, Wireserver or WireserverAndImds", *s.SecureChannelState)
		}
	}
	switch s.Version {
	case Version1:
		if s.SecureChannelState == nil {
			add("secureChannelState: required with version 1.0")
		}
	case Version2:
		if s.SecureChannelEnabled == nil {
			add("secureChannelEnabled: required with version 2.0")
		}
	default:
		add("version %q: want \"1.0\" or \"2.0\"", s.Version)
	}
	if s.KeyGUID != nil && !ValidGUID(*s.KeyGUID) {
		add("keyGuid %q: want a GUID such as 00000000-0000-0000-0000-000000000000", *s.KeyGUID)
	}
	if len(problems) == 0 {
		return nil
	}
	err := &ValidationError{Problems: problems}
	if vtpm {
		return errors.Join(err, ErrVTPMUnsupported)
	}
	return err
}

// Item returns the authorization item that governs an endpoint, or nil.
// HostGAPlugin follows WireServer's item (host-protocol.md §4); use HostGAID
// for the hostga item's id, which is reported but not applied.
func (s *KeyStatus) Item(e Endpoint) *AuthorizationItem {
	if s == nil || s.AuthorizationRules == nil {
		return nil
	}
	switch e {
	case IMDS:
		return s.AuthorizationRules.IMDS
	case WireServer, HostGAPlugin:
		return s.AuthorizationRules.WireServer
	}
	return nil
}

// RuleID returns the id reported in status for an endpoint's rules
// (wireServerRuleId, imdsRuleId, hostGARuleId): for HostGAPlugin it is the
// hostga item's own id, as GPA reports it.
func (s *KeyStatus) RuleID(e Endpoint) string {
	if s == nil || s.AuthorizationRules == nil {
		return ""
	}
	var it *AuthorizationItem
	switch e {
	case IMDS:
		it = s.AuthorizationRules.IMDS
	case WireServer:
		it = s.AuthorizationRules.WireServer
	case HostGAPlugin:
		it = s.AuthorizationRules.HostGA
	}
	if it == nil {
		return ""
	}
	return it.ID
}

// Modes derives the effective mode of each endpoint (host-protocol.md §4),
// with the project's decisions: unknown mode strings are enforced and a v2
// payload with secureChannelEnabled false disables everything. A nil status
// (nothing received yet) disables everything.
func (s *KeyStatus) Modes() Modes {
	if s == nil {
		return Modes{}
	}
	if s.Version == Version2 {
		if s.SecureChannelEnabled == nil || !*s.SecureChannelEnabled {
			return Modes{}
		}
		ws := itemMode(s.Item(WireServer))
		return Modes{IMDS: itemMode(s.Item(IMDS)), WireServer: ws, HostGAPlugin: ws}
	}
	state := ""
	if s.SecureChannelState != nil {
		state = strings.ToLower(*s.SecureChannelState)
	}
	var m Modes
	switch state {
	case "wireserver", "wireserverandimds":
		m.WireServer = ModeEnforce
	case "audit":
		m.WireServer = ModeAudit
	}
	m.HostGAPlugin = m.WireServer
	switch state {
	case "disabled":
		m.IMDS = ModeDisabled
	case "wireserverandimds":
		m.IMDS = ModeEnforce
	default:
		m.IMDS = ModeAudit
	}
	return m
}

// itemMode is the effective mode of one v2 item: missing ⇒ disabled,
// unknown ⇒ enforce.
func itemMode(it *AuthorizationItem) Mode {
	if it == nil {
		return ModeDisabled
	}
	m, _ := ParseMode(it.Mode)
	return m
}

// StateUnknown is the state string before the first valid status.
const StateUnknown = "Unknown"

// StateString renders GPA's secure-channel state string byte for byte
// (host-protocol.md §5), including the two spaces before "IMDS" and
// "Disabled" for an unknown mode. Report it beside Modes, which carry the
// effective (fail-closed) modes. A nil status renders StateUnknown.
func (s *KeyStatus) StateString() string {
	if s == nil {
		return StateUnknown
	}
	if s.Version == Version2 {
		if s.SecureChannelEnabled == nil || !*s.SecureChannelEnabled || s.AuthorizationRules == nil {
			return "disabled"
		}
		ws := gpaModeWord(s.AuthorizationRules.WireServer)
		return "WireServer " + ws + " -  IMDS " + gpaModeWord(s.AuthorizationRules.IMDS) + " - HostGA " + ws
	}
	if s.SecureChannelState != nil {
		return strings.ToLower(*s.SecureChannelState)
	}
	return "disabled"
}

// gpaModeWord is M(item) of host-protocol.md §5.
func gpaModeWord(it *AuthorizationItem) string {
	if it == nil {
		return "Disabled"
	}
	switch strings.ToLower(it.Mode) {
	case "enforce":
		return "Enforce"
	case "audit":
		return "Audit"
	}
	return "Disabled"
}

// Summary is what status reports about the secure channel: GPA's state
// string, rendered from the raw payload for compatibility, and beside it the
// modes the agent actually applies, which differ where the project fails
// closed (an unknown mode string reads "Disabled" in the state string but is
// enforced).
type Summary struct {
	SecureChannelState string `json:"secureChannelState"`
	EffectiveModes     Modes  `json:"effectiveModes"`
}

// Summarize returns the Summary of a status; nil means nothing valid has
// been received yet.
func (s *KeyStatus) Summarize() Summary {
	return Summary{SecureChannelState: s.StateString(), EffectiveModes: s.Modes()}
}
