// Package loadgen is the repository's HTTP/1.1 load generator for the
// proxy benchmarks (`make bench-proxy`, reused by `make bench`): raw TCP
// clients that send one fixed request and read responses framed by
// Content-Length or chunked coding, so that the client's own cost is small
// and the same for a direct and a proxied run. It sends traffic only to
// the address it is given; callers pass loopback addresses.
package loadgen
