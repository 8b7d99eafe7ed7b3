package keykeeper

import (
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/sign"
)

// State is what the keeper knows after one poll iteration. Each value is
// immutable once delivered: the daemon may keep it in an atomic.Pointer and
// read it from any goroutine. It never holds key material except inside
// Signer, which does not print it.
type State struct {
	// Seq increases by one with every delivered State.
	Seq uint64
	// Time is the keeper clock's time at the end of the iteration.
	Time time.Time

	// Status is the last valid secure-channel status; nil before the
	// first one (or after a wake-up in a disabled state reset it). It is
	// shared between States: read it, never modify it. A status that
	// failed validation never replaces it.
	Status *hostproto.KeyStatus
	// SecureChannelState is GPA's state string of Status
	// (host-protocol.md §5): "Unknown" while Status is nil.
	SecureChannelState string
	// HostModes are the host's modes per endpoint (Status.Modes();
	// HostGAPlugin follows WireServer; all disabled while Status is nil).
	// The daemon combines them with the settings through
	// authz.EffectiveModes.
	HostModes hostproto.Modes

	// Signer signs with the latched key; nil when no key is in memory
	// (none latched yet, or the secure channel is disabled). During a
	// rotation it stays the old key until the new one is attested.
	Signer *sign.Signer
	// KeyGUID, KeyIncarnationID and KeyIssued describe Signer's key
	// ("" / nil when Signer is nil).
	KeyGUID          string
	KeyIncarnationID *uint32
	KeyIssued        string
	// KeyLatchedAt is when Signer's key was latched (loaded from disk or
	// attested), for the key-age metric.
	KeyLatchedAt time.Time
	// Latched is KEY_LATCH_READY (agent.md §3.1): a key was loaded from
	// disk or acquired and attested, or the secure channel is disabled.
	Latched bool

	// HostTimeOffset is host time minus the keeper clock, learnt from the
	// host's date headers (host-protocol.md §7.4); zero before the first
	// synchronisation. Use HostNow / HostDate for x-ms-azure-host-date.
	HostTimeOffset time.Duration
	// HostTimeSyncedAt is the keeper clock's time of the last
	// synchronisation; zero if none.
	HostTimeSyncedAt time.Time

	// LastError is the failure of the latest iteration (transport,
	// HTTP status, invalid payload, key acquisition, attestation or key
	// file); nil when it succeeded. The rest of the State is then the
	// previous one, except what the iteration could validate.
	LastError error
	// ConsecutiveFailures counts failed iterations since the last success.
	ConsecutiveFailures int
	// LastSuccess is the time of the latest fully successful iteration.
	LastSuccess time.Time
	// Warning is a non-fatal problem of the latest iteration, such as a
	// key file the keeper refused to use (a new key was acquired instead).
	Warning string
	// NextPoll is the delay before the next poll (fast poll, interval, or
	// back-off with jitter after a failure).
	NextPoll time.Duration
}

// Item returns the host's authorization item of an endpoint (v2 payload
// rules, HostGAPlugin gets WireServer's); nil when there is none.
func (s *State) Item(e hostproto.Endpoint) *hostproto.AuthorizationItem {
	return s.Status.Item(e)
}

// RuleID returns the raw host id of an endpoint's item, for status
// (wireServerRuleId, imdsRuleId, hostGARuleId).
func (s *State) RuleID(e hostproto.Endpoint) string { return s.Status.RuleID(e) }

// Disabled reports whether the host has the secure channel disabled.
func (s *State) Disabled() bool { return s.SecureChannelState == stateDisabled }

// stateDisabled is the state string of a disabled secure channel (§5).
const stateDisabled = "disabled"

// Stable reports whether the state is latched in the sense of the
// provisioning query (agent.md §3.3): a valid status was received and the
// secure channel is not disabled. (Latched is the KEY_LATCH_READY bit.)
func (s *State) Stable() bool { return s.Status != nil && !s.Disabled() }
