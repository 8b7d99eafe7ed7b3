// Package osgate decides whether the handler supports this machine: the
// distribution from os-release against the supported list, and the kernel
// by runtime probes of the eBPF features the agent needs (bpf.Probe plus
// the sock_addr attach types connect4/6 and getpeername4/6), never by its
// version string. A refusal is an *UnsupportedError naming what is
// missing; the handler reports it as the CheckOSVersionSupport error
// status and exits 6.
//
// Specification: ../shared/spec/handler-contract.md §8.2, §8.8; issue 10
// item 8.
package osgate
