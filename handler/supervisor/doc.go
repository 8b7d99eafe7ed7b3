// Package supervisor keeps msp-agent running where systemd is not PID 1
// (containers, the demo, tests and the handler's test mode): it starts the
// agent, restarts it after a crash with exponential back-off, restarts it
// at once on request (a new binary), forwards SIGHUP (a new
// configuration), and stops it on shutdown; the agent's pid is kept in a
// pidfile. The handler runs it as a detached `msp-handler supervise`
// process; Spawn, Find and Stop manage such detached processes through
// their pidfiles, checking /proc/<pid>/cmdline so a reused pid is never
// signalled.
//
// Issue 10 item 4.
package supervisor
