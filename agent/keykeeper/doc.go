// Package keykeeper keeps the agent's secure-channel key: it polls
// WireServer's GET /secure-channel/status, latches the key the host
// expects (from <keys dir>/<guid>.key, or acquired with
// POST /secure-channel/key, persisted and attested with
// POST /secure-channel/key/{guid}/key-attestation signed by the new key),
// rotates it when the host presents another guid or key incarnation, and
// learns host time from x-ms-azure-host-date.
//
// Place on the control path: the daemon runs one Keeper; every poll
// iteration produces an immutable State (host modes, GPA's state string,
// the host's rule items, the current *sign.Signer, readiness, last error,
// host-time offset) delivered through Options.OnState and Current. The
// daemon swaps it into the proxy atomically and combines HostModes with
// the settings (authz.EffectiveModes) to drive authorization and the
// redirector; redirects for an enforced endpoint wait until State.Signer is
// set (host-protocol.md §7.2).
//
// Invariants:
//   - a status that fails transport, HTTP or validation never changes the
//     state, key or rules; the error is in State.LastError and polling
//     backs off exponentially with jitter (1 s → the poll interval);
//   - during a rotation the old key keeps signing until the new one is
//     attested; after an attestation every key file but the current and the
//     previous one is deleted (host-protocol.md §6.3);
//   - key files are 0600 and owned by the agent's user in a 0700 directory
//     of the same owner; a file with another type, mode or owner is refused
//     with a message naming it and the fix, and a new key is acquired;
//   - key material is never logged nor put in an error; the guid is;
//   - every host call has a timeout, uses a new connection carrying the
//     exemption SO_MARK, and is written byte for byte so that what is
//     signed is what is sent;
//   - the Clock is injectable: polling, back-off, the 5-minute fast-poll
//     window and host time all read it.
//
// Error contract: New fails on missing options or an unusable keys
// directory; Run returns nil when its context ends; every other failure is
// reported in State.LastError (a *HostError for an unexpected HTTP status,
// a *hostproto.ValidationError for an invalid payload, errors naming the
// key file when it cannot be saved) and retried; a refused key file is
// reported in State.Warning.
//
// Specification: ../shared/spec/host-protocol.md §2–§7, agent.md §3, §5.5;
// issue 9 item 4.
package keykeeper
