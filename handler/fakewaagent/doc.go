// Package fakewaagent drives a handler package the way waagent 2.15 does
// (handler-contract.md §2–§5), for conformance tests: it lays out
// <LIB>/<Name>-<Ver>/ with HandlerManifest.json, HandlerEnvironment.json,
// config/ and status/, writes <seq>.settings with protected settings
// encrypted to a test tenant certificate in <LIB>, runs the commands the
// manifest names through /bin/sh -c from the handler root in their own
// process group with waagent's environment variables and timeouts
// (killing the whole group on timeout), and replays waagent's command
// orders: first install, settings change, upgrade and removal.
//
// It reads the handler's status and heartbeat files as waagent does.
//
// Its tests run the built handler with the real msp-agent in test mode:
// msp-hostsim on this process's loopback address, the agent attached to a
// child cgroup the test creates, curl clients placed in that cgroup, and
// every lifecycle step judged by the status files and by what the
// emulated host verified. `make demo` (internal/demo) drives it too.
package fakewaagent
