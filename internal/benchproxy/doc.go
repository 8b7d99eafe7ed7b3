// Package benchproxy is `msp-bench proxy` (`make bench-proxy`, issue 8
// item 8): the same loopback workload sent direct to msp-hostsim and
// through the eBPF redirector and the signing proxy, interleaved in one
// run, printed as a table against the goals.
//
// Three processes keep the measurements apart: this one runs the
// emulator and orchestrates; the proxy runs in a child process (its CPU
// time and RSS are read from /proc); each workload runs in a client child
// process, placed in a child cgroup where the redirector is attached for
// the proxied runs and outside it for the direct ones. Needs root; every
// address is on loopback.
//
// `msp-bench compare` (`make bench`, issue 12 item 2) runs the same client
// children against three targets in interleaved, rotated rounds: direct
// to the emulator; the real msp-agent process (a configuration pointing
// at the emulator, attached to the bench's child cgroup, a private
// bpffs), the clients placed in that cgroup; and nginx as a plain reverse
// proxy adding a header, with an upstream keep-alive pool, configured in
// a temporary directory on loopback. It prints a table with the goals
// against nginx marked met or missed and writes bench.json and bench.svg
// (latency distributions, drawn by hand).
package benchproxy
