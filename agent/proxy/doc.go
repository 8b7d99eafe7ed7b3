// Package proxy is the signing proxy of agent.md §4–§6: a loopback
// listener that receives the connections the eBPF redirector sent it,
// learns each caller from the kernel's record, and for every request on a
// connection (keep-alive and pipelined requests each on their own) checks
// framing, method and path, authorizes it with the endpoint's current
// policy snapshot, endorses it (claims, date, signature: the code path of
// `mspctl sign`) and forwards it to the original destination over one
// upstream connection per client connection, streaming the response back.
//
// No net/http on the data path: requests are read by rawhttp, responses
// are framed by a minimal reader that parses only what framing needs
// (Content-Length, chunked, close-delimited, HEAD/204/304, 1xx), and large
// bodies move between the two TCP connections with io.Copy, which the
// kernel splices.
//
// The daemon owns keys and configuration: it swaps policy snapshots, the
// signer and the host's modes through the Proxy's setters (in-flight
// requests finish on what they started with) and fills the /provision and
// /gpa-aggregated-status hooks. Who the caller is comes from Config.Identify
// and every request's decision goes to Config.Audit, one audit.Entry each.
//
// Every refusal carries x-ms-azure-proxy-reason with a code of
// authorization.md §9 (see Reason*), Connection: close, and the body
// "<code> <correlation id>".
package proxy
