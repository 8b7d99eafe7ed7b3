// Package redirect is the agent's handle on the eBPF redirector: it attaches
// the programs of package bpf at the cgroup2 root, turns each metadata
// endpoint's mode into a target (or none), and gives the proxy the caller
// record of each accepted connection.
//
// On the data path it sits between the key keeper, which calls SetModes on
// every poll, and the proxy, which calls Take on every accept (its
// recordTaker interface). Status feeds the agent's eBPF substatus.
//
// Invariants:
//   - A disabled endpoint has no target and is never redirected; audit
//     fails open and enforce fails closed when the agent is not listening
//     (ebpf.md §6.6).
//   - Start removes stale legacy attachments of our programs before
//     attaching; without Config.PinDir Close detaches everything, as does
//     the process's exit.
//   - With Config.PinDir the programs, targets and records outlive the
//     process: while no agent listens, enforce fails closed (EPERM at once)
//     and audit fails open; the next Start adopts or replaces the pins
//     without a moment in which a hook runs no program; only Cleanup
//     removes them.
//   - Endpoint addresses are configuration: the real defaults are
//     DefaultAddresses; tests use loopback aliases.
//   - A record lives only as long as the client's socket: Take finds none
//     for a client that already closed, and never one made by another
//     socket that used the same source port.
//   - Records carry the caller's task identity (effective uid, executable,
//     start time) where the kernel has BTF; Status.TaskInfo says whether.
//
// Errors from Start name what is missing (no cgroup2 mount, kernel feature,
// privilege); missing kernel support matches ebpf.ErrNotSupported.
//
// Specification: ../../shared/spec/ebpf.md §6–§7, agent.md §5.1; issues 5, 15.
package redirect
