// Package content produces what the emulated host services answer: IMDS
// (instance metadata honouring api-version and format, managed-identity
// tokens in the shape azidentity parses, versions, scheduled events,
// attested document), WireServer (versions, the goal-state XML family,
// telemetry, agent log) and HostGAPlugin (health, vmSettings, status).
//
// Place: package hostsim calls it after a request passed (or, in audit and
// disabled mode, was only recorded by) the signature guard. Nothing here
// knows about keys, modes or signatures, and nothing here logs.
//
// All identifiers are fixed and fictitious; documents are small but
// well-formed, enough for agents and tests, not a full host.
//
// Specification: ../shared/spec/host-protocol.md §1, §2 and §11; issue 3.
package content
