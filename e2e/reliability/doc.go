// Package reliability holds the load and fault suite of issue 13 item 3:
// the real msp-agent (internal/agenttest) in front of msp-hostsim, driven
// by client processes placed in the agent's cgroup as root and as other
// users, under idle-connection floods, slowloris clients, host faults, key
// rotation, SIGKILL and a full log disk. The fast cases run in `make test`;
// the heavy variants (build tag stress, TestStress*) in `make stress`.
// docs/reliability.md records what each case measured. Linux and root only;
// traffic goes to loopback addresses only.
package reliability
