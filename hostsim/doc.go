// Package hostsim emulates the host side of the Metadata Security Protocol
// (IMDS, WireServer with the secure channel, HostGAPlugin) on loopback
// addresses, verifying request signatures like a host in enforce mode would.
//
// Place on the data path: it stands where 169.254.169.254 and
// 168.63.129.16 are in Azure. Each endpoint reads requests with its own
// reader (package wire) in its own connection loop, so the raw
// request-target, the ordered header list (duplicates included) and the
// de-chunked body are what gets verified (host-protocol.md §8.9); package
// hostsig, the emulator's own implementation of §8 sharing no code with
// agent/sign, agent/endorse or agent/rawhttp, recomputes the signature.
// Every end-to-end test trusts that verdict, so it must not repeat an
// agent bug. Requests that pass (or, in audit and disabled mode, are only
// recorded) are answered by package content; the secure channel is served
// here because it owns the keys. The exempt uploads are streamed (up to
// 100 MiB), counted and hashed, never held whole. HEAD is answered
// without a body on every path.
//
// Invariants:
//   - it listens only on 127.0.0.0/8 or ::1 and never forwards anywhere;
//   - default closed: the start-up state enforces every endpoint, and the
//     attestation is verified with the key being attested in every mode;
//   - State.Modes is the single source of truth for verification and for
//     the rendered status payload;
//   - one reason per rejection (ReasonUnsigned, ReasonUnknownKey,
//     ReasonBadSignature, ReasonDateSkew, ReasonMissingClaims, then
//     ReasonNotRoot), checked in that order: authenticity, then content;
//   - key material and full signatures are never logged or recorded
//     (records keep the first 8 hex digits of a signature).
//
// Exemptions (never required to be signed): PUT /vmAgentLog and
// POST /machine/?comp=telemetrydata matched on the method plus the whole
// lower-cased path-and-query (§8.8), and the bootstrap calls
// GET /secure-channel/status and POST /secure-channel/key.
//
// Keys: POST /secure-channel/key issues a random (or State-chosen, see
// Patch.NextKey) key; POST /secure-channel/key/{guid}/key-attestation
// signed with that key makes it the key requests verify with and the
// status' keyGuid. A keyIncarnationId change reports keyGuid null until a
// new key is attested; the old key stays valid until then.
//
// In-process use (agent tests):
//
//	e, err := hostsim.Start(hostsim.Config{
//		IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0",
//	})
//	defer e.Close()
//	e.Apply(&hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: &audit}})
//	recs := e.Verifications(0)
//
// Out of process: bin/msp-hostsim (Run) with --imds-addr, --wireserver-addr,
// --hostga-addr, --control-addr and --verify-log; it prints the bound
// addresses as one JSON line on stdout. Package control is the Go client of
// the control API; package guest is a minimal signing guest for tests.
//
// Error contract: Start and Apply return errors naming the field and the
// fix; the control API answers them as 400 {"error": "..."}.
//
// Specification: ../shared/spec/host-protocol.md §2–§9 and §11; issue 3.
package hostsim
