// Package demo is `make demo` (issue 12 item 1): on one Linux machine,
// without Azure, it starts msp-hostsim on loopback aliases, installs and
// enables msp-agent through the real msp-handler driven by the fake
// waagent (handler/fakewaagent) in test mode, runs real clients in a
// child cgroup the agent attaches to, and prints one row per scenario:
// who asked, for what, the agent's decision and reason (its audit log and
// x-ms-azure-proxy-reason), the host's verdict (the emulator's
// verification log), the HTTP status and whether that is what the
// protocol promises. It then uninstalls through the handler and checks
// that nothing is left running, attached or pinned.
//
// Traffic goes only to loopback addresses; the real metadata addresses
// are never dialled (the token client maps 169.254.169.254:80 to the
// emulated IMDS in its dialer).
package demo
