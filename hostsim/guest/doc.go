// Package guest is a minimal MSP guest for tests of the host emulator and
// of code that talks to it: it builds requests the way the agent forwards
// them (claims and date headers added, then signed with agent/sign),
// writes them byte-exactly with agent/rawhttp over a fresh loopback TCP
// connection, and performs key acquisition and attestation
// (host-protocol.md §2, §6.2, §8).
//
// It is not the agent: no polling, no persistence, no authorization. It
// refuses to dial anything but loopback addresses.
package guest
