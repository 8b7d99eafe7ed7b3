// Package wire is the emulator's own HTTP/1.1 request reader: the request
// line, the header fields exactly as received (names as sent, values with
// only the line ending removed, wire order, duplicates kept) and the body
// framing (Content-Length or chunked), with the body either buffered or
// streamed.
//
// Place on the data path: it is the first thing a request reaching the
// emulated host meets. It exists so that the host side of a signature
// check shares no parsing with the agent (agent/rawhttp): a bug in the
// agent's reader cannot be repeated by the oracle meant to catch it
// (issue 16 item 4).
//
// Invariants: it never panics on any input; every refusal is an *Error
// with the HTTP status to answer and a reason code; a streamed body never
// yields more than its limit.
package wire
