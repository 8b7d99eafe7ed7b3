// Package agentsvc is the handler's side of msp-agent: where its files go
// (Layout, with the test mode's MSP_ROOT), the configuration the handler
// writes for it (Config), installing the binary, units and configuration
// atomically (Installer), running it (Controller: systemd when systemd is
// PID 1, otherwise the built-in supervisor), and asking it whether it is
// ready, its version, and to clean up (Agent, through its command line:
// --status --wait N, --version, --cleanup).
//
// Test mode: MSP_ROOT=DIR puts every path under DIR and always uses the
// supervisor; MSP_ENDPOINTS, MSP_LISTEN, MSP_CGROUP and MSP_POLL_SECONDS
// go into the agent's configuration, MSP_MONITOR_SECONDS sets the
// monitor's period (Options). The systemd controller installs the hardened
// unit of agent/unitfile.
//
// Specification: ../shared/spec/handler-contract.md §5.4, §8.5, §8.8;
// issue 10 items 4, 7 and 9; the agent's command line and configuration:
// issue 9 items 1 and 2.
package agentsvc
