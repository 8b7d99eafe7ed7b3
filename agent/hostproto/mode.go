package hostproto

import (
	"fmt"
	"strings"
)

// Mode is the enforcement mode of one endpoint. The zero value is
// ModeDisabled.
type Mode uint8

// The three modes of host-protocol.md §4.
const (
	ModeDisabled Mode = iota
	ModeAudit
	ModeEnforce
)

// String returns the lower-case wire name of the mode.
func (m Mode) String() string {
	switch m {
	case ModeDisabled:
		return "disabled"
	case ModeAudit:
		return "audit"
	case ModeEnforce:
		return "enforce"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode reads a mode case-insensitively. An unknown or empty string is
// returned as ModeEnforce with ok false: the project fails closed where GPA
// falls back to disabled (host-protocol.md §4).
func ParseMode(s string) (m Mode, ok bool) {
	switch strings.ToLower(s) {
	case "disabled":
		return ModeDisabled, true
	case "audit":
		return ModeAudit, true
	case "enforce":
		return ModeEnforce, true
	}
	return ModeEnforce, false
}

// MarshalText writes the lower-case wire name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode strictly: an unknown value is an error naming
// the accepted ones. Use ParseMode for the lenient, fail-closed reading of
// host payloads.
func (m *Mode) UnmarshalText(b []byte) error {
	v, ok := ParseMode(string(b))
	if !ok {
		return fmt.Errorf("mode %q: want disabled, audit or enforce", b)
	}
	*m = v
	return nil
}

// Endpoint names one metadata service.
type Endpoint uint8

// The endpoints the agent protects.
const (
	IMDS Endpoint = iota + 1
	WireServer
	HostGAPlugin
)

// Endpoints lists every endpoint in a stable order.
var Endpoints = [...]Endpoint{IMDS, WireServer, HostGAPlugin}

// String returns the key used for the endpoint in authorizationRules
// ("imds", "wireserver", "hostga").
func (e Endpoint) String() string {
	switch e {
	case IMDS:
		return "imds"
	case WireServer:
		return "wireserver"
	case HostGAPlugin:
		return "hostga"
	}
	return fmt.Sprintf("endpoint(%d)", uint8(e))
}

// ParseEndpoint reads an endpoint name as used on the command line and in
// authorizationRules. It accepts "hostgaplugin" as an alias of "hostga".
func ParseEndpoint(s string) (Endpoint, error) {
	switch strings.ToLower(s) {
	case "imds":
		return IMDS, nil
	case "wireserver":
		return WireServer, nil
	case "hostga", "hostgaplugin":
		return HostGAPlugin, nil
	}
	return 0, fmt.Errorf("endpoint %q: want imds, wireserver or hostga", s)
}

// RootOnly reports whether the endpoint serves only elevated callers
// (authorization.md §5: WireServer and HostGAPlugin).
func (e Endpoint) RootOnly() bool { return e == WireServer || e == HostGAPlugin }

// Modes holds the effective mode of each endpoint.
type Modes struct {
	IMDS         Mode `json:"imds"`
	WireServer   Mode `json:"wireServer"`
	HostGAPlugin Mode `json:"hostGAPlugin"`
}

// Of returns the mode of one endpoint.
func (m Modes) Of(e Endpoint) Mode {
	switch e {
	case IMDS:
		return m.IMDS
	case WireServer:
		return m.WireServer
	case HostGAPlugin:
		return m.HostGAPlugin
	}
	return ModeDisabled
}
