// Package agent is the root of the msp-agent daemon: the signing proxy that
// sits between processes on the VM and the metadata services (IMDS,
// WireServer, HostGAPlugin).
//
// The data path lives in sub-packages, one noun each:
//
//	rawhttp   reads and writes HTTP/1.1 requests byte-exactly (raw target, ordered headers)
//	endorse   turns a client request into the request forwarded upstream (strip, claims, date, sign)
//	sign      the MSP request signature (string to sign, HMAC-SHA256, authorization header)
//	hostproto the secure-channel wire types, their validation and the per-endpoint modes
//	redirect  the eBPF redirector as the agent uses it: modes to targets, caller records
//	authz     the allowlist: compiled snapshots, canonical matching, decisions
//
// Specification: ../shared/spec/agent.md and host-protocol.md.
package agent
