// Package sign computes the MSP request signature: the string to sign over
// the request as it is forwarded, HMAC-SHA256 with the 256-bit key latched
// from the host, and the x-ms-azure-host-authorization header value
// "Azure-HMAC-SHA256 <guid> <lowercase hex>".
//
// Place on the data path: endorse calls Signer.Authorization on the final
// outgoing header list; the host emulator calls Verify on what it received.
// Both use the same canonicalization, so a byte of difference from the
// host's recomputation shows up in tests, not in the field.
//
// Quirks reproduced on purpose (host-protocol.md §8.3, §8.4): every header
// is signed except the authorization header itself; names are lower-cased
// and sorted bytewise, the last duplicate wins, values are trimmed of spaces
// and tabs; the body is appended raw; the path is the raw path of the
// request-target; the query is canonicalized by sorting key+value
// concatenations, with collisions resolved in favour of the later piece.
//
// A Signer holds key material: it never prints it and nothing here logs.
// Signing allocates only the returned header string.
//
// Specification: ../shared/spec/host-protocol.md §8; vectors in
// ../shared/spec/test-vectors.json.
package sign
