// Package rawhttp reads and writes HTTP/1.1 requests byte-exactly: the raw
// request-target and the ordered header list (names, values, duplicates)
// survive, which Go's net/http does not guarantee (host-protocol.md §8.9).
//
// Place on the data path: the proxy reads each client request with
// ReadHead and ReadBody, endorse transforms it, and WriteTo serializes the
// exact bytes that were signed. The host emulator reads requests with the
// same reader so that it verifies what a host would see.
//
// Error contract: every error returned by the reader is an *Error carrying
// the HTTP status the proxy answers with (400 framing, 413 too large, 431
// header section too large) and a reason code; io.EOF is returned unwrapped
// when the connection closed cleanly before a request started. The reader
// never panics on any input (fuzzed).
//
// Specification: ../shared/spec/agent.md §5.2 step 1 and §5.3,
// host-protocol.md §8.3 and §8.9.
package rawhttp
