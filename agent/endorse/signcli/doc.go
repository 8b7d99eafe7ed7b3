// Package signcli implements `mspctl sign`: it reads one raw HTTP/1.1
// request from stdin exactly as a client would send it, applies the proxy's
// transformation (package endorse, the same code path as the proxy) and
// writes the request exactly as it would be forwarded upstream.
//
// Exit codes: 0 written, 2 bad arguments or a request the proxy would refuse
// (one line on stderr naming the problem).
package signcli
