// Package metrics keeps the agent's counters and exposes them in the
// Prometheus text format (version 0.0.4) on a Unix socket that only root
// can open (issue 9 item 7): requests by endpoint, decision and status, a
// latency histogram per endpoint, and gauges the daemon registers (key age,
// redirect counters, host poll errors).
//
// It is written by hand rather than with prometheus/client_golang: the
// library measured +2.8 MiB RSS and +2.9 MB of binary on an otherwise idle
// process, a fifth of the agent's 15 MiB idle budget, for a handful of
// counters. Tests check the output with Prometheus' own text parser.
package metrics
