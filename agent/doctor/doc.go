// Package doctor is `mspctl doctor` (issue 12 item 3): it checks what the
// agent needs from the machine (kernel version, cgroup2, the eBPF program
// types, helpers and hooks of bpf.Probe and osgate.ProbeKernel, bpffs),
// the running agent's health as its configuration file locates it (the
// /provision answer on its listener, status.json in its log directory,
// the metrics socket in its state directory: the effective mode per
// endpoint and the key's age), and sends one request to the configured
// IMDS address to see that the interception answers it: the proxy marks
// every response it relays with x-ms-azure-host-authorization and every
// refusal with x-ms-azure-proxy-reason.
//
// It prints one line per check, with what to do when it fails, and the
// exit status is 1 when any check fails. With the default configuration
// the test request goes to the real metadata address; that is the point
// on a VM, and tests pass a configuration pointing at an emulator.
package doctor
