// Package signcli implements `mspctl sign`: it reads one raw HTTP/1.1
// request from stdin exactly as a client would send it, applies the proxy's
// transformation (package endorse, the same code path as the proxy) and
// writes the request exactly as it would be forwarded upstream.
//
// A request whose target the proxy refuses before authorization
// (authz.CheckTarget: 400 bad-request-line for raw bytes outside RFC 3986,
// 403 path-rejected for the decoded class of authorization.md I-24) is
// refused here too: nothing the proxy would not forward gets signed.
//
// Exit codes: 0 written, 2 bad arguments or a request the proxy would refuse
// (one line on stderr naming the problem).
package signcli
