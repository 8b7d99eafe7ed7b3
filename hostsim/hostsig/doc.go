// Package hostsig is the emulated host's own implementation of request
// signing (host-protocol.md §8.2–§8.5): string to sign, canonical headers,
// path and canonical query, HMAC-SHA256 and the authorization header.
//
// Place on the data path: the emulator verifies every request with it; it
// is the oracle that end-to-end tests trust. It is written from the
// specification and shares no code with agent/sign, agent/endorse or
// agent/rawhttp, so a canonicalization bug in the agent is not repeated by
// the check meant to catch it (issue 16 item 4). Keep it that way: do not
// import those packages here.
//
// Invariants: the comparison of a presented MAC with the expected one is
// hmac.Equal (constant time); key material never appears in errors.
package hostsig
