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
package benchproxy
