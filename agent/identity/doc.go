// Package identity turns the kernel's record of a redirected connect()
// into the caller the proxy authorizes and audits (agent.md §5.1): uid,
// gid, tgid and comm come from the record; user and group names, the
// executable, the process name and the (redacted) command line are
// enriched from /proc and the user database, and stay empty whenever /proc
// no longer describes the process that connected.
package identity
