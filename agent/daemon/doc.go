// Package daemon assembles msp-agent (issue 9, agent.md §1–§3, §6–§10):
// the configuration, the eBPF redirector, the signing proxy, the key
// keeper, the audit log, provisioning, the status document and metrics.
// It owns one rule the pieces cannot see alone: the redirect policy. An
// endpoint is redirected when its effective mode (the stricter of the
// host's and the settings') is not disabled, except that an endpoint the
// host enforces is redirected only once a key is latched
// (host-protocol.md §7.2): before that the host would refuse what the
// proxy forwards anyway, and the connection goes straight to it, refused
// there.
//
// Reload: SIGHUP or a change of the configuration file re-reads it. The
// settings and the log level apply at once (the policies are recompiled
// and swapped; requests in flight finish on their snapshot). A change to
// anything else (addresses, directories, limits, poll interval, cgroup)
// makes Run return ErrRestart so that systemd or the handler's supervisor
// start the agent again with it; an invalid file is reported and the last
// good configuration stays in force.
package daemon
