// Package attack is the attack suite of issue 13 item 2: the real
// msp-agent (built from cmd/msp-agent) in front of msp-hostsim, attacked by
// processes of the VM, each case asserting what the emulated host received.
// Linux and root only; it has no non-test code.
//
// Threat model. The attacker is a local process in the VM: typically an
// unprivileged user (uid 65534 here), sometimes root in a namespace of its
// own, able to open any socket, write any bytes, set any header, pick any
// spelling of the destination, move between cgroups and network namespaces
// it may create, and read any file its uid may read. It wants one of:
//   - a request the host accepts as signed that the policy denies it, or a
//     request with claims it does not hold (isRoot, another identity);
//   - an unsigned request the host accepts in enforce mode;
//   - the agent's signing key, or a full signature it can replay;
//   - the agent forwarding somewhere other than the original destination
//     (SSRF through the signing proxy), or a request smuggled past the
//     agent's reading to the host as a separate request;
//   - a reach to the listener from off the machine.
//
// Out of scope: root in the VM's initial namespaces (it owns the key and
// can detach the programs), the host itself, and the network between the
// VM and the host (the spec's replay window is the only defence there,
// and the replay case measures it).
//
// Every case runs against one agent (agenttest on the 127.0.4 loopback
// subnet) with an IMDS settings policy that grants /metadata/identity to
// root and to the executable /usr/bin/bash alone; a raw client (this test
// binary re-executed inside the agent's cgroup, as root or uid 65534,
// optionally in a new network or user namespace) sends exact bytes and
// reports what came back and whether the connection was closed. The table
// of cases and results is in
// docs/reliability.md, "Attack suite".
package attack
