// Package endorse turns a client's request into the request the proxy
// forwards upstream: the one transformation shared by the proxy and
// `mspctl sign`, so that what an operator reproduces by hand is what the
// host receives.
//
// Steps, in order (agent.md §5.2 steps 8, 11, 12 and §5.3; issue #2):
//  1. remove every client header whose name starts with x-ms-azure-host-
//     (any case, '_' read as '-', as CGI-style servers do) — always, before
//     anything else;
//  2. answer-side headers the proxy consumes are removed (Expect:
//     100-continue; any other expectation is refused with 417);
//  3. of a repeated header only the last copy is kept, in its place, so the
//     forwarded set equals the signed set;
//  4. a signed request's chunked body is forwarded de-chunked: the
//     Transfer-Encoding header is replaced, in its place, by Content-Length;
//     an exempt request keeps its framing and its body is streamed (a
//     chunked one chunk by chunk);
//  5. x-ms-azure-host-claims and x-ms-azure-host-date are appended;
//  6. unless the request is exempt and when a key is present,
//     x-ms-azure-host-authorization is appended last.
//
// Exempt means one of the two requests of host-protocol.md §8.8, from root,
// to WireServer or HostGAPlugin (issue 15 item 2); everything else is
// signed with the 100 KB body limit.
//
// Prepare and Write are the streaming form the proxy and `mspctl sign`
// both use: Prepare reads a signed body (growing as bytes arrive) and
// rewrites the head; Write sends the head and buffered body in one write
// and streams an exempt body. Transform is the same rewrite for a request
// whose body was already read. The request is modified in place. Errors are *rawhttp.Error values carrying the status
// the proxy answers with.
package endorse
