// Package hostproto holds the wire types of the WireServer secure channel
// (KeyStatus v1 and v2, Key, AuthorizationItem and its rules) and the logic
// that reads them: validation, the per-endpoint mode derivation and GPA's
// human-readable state string.
//
// Place on the control path: the key keeper fetches a KeyStatus, validates it
// here and, only when it is valid, applies the modes and rules it carries. A
// payload that fails validation is reported and ignored; the caller keeps its
// previous state, key and rules. Unknown JSON fields in host payloads are
// ignored, never fatal (the host may add fields at any time).
//
// Project decisions that differ from GPA (host-protocol.md §3.3, §4):
//   - a scheme other than Azure-HMAC-SHA256, a key delivery method other than
//     http, or a version other than "1.0"/"2.0" fail validation;
//   - an unknown mode string is enforced, never disabled;
//   - v2 with secureChannelEnabled false disables every endpoint.
//
// Nothing in this package logs, and Key never prints its secret.
//
// Specification: ../shared/spec/host-protocol.md §3–§6.
package hostproto
