// Package control is the Go client of the host emulator's control API
// (package hostsim): read and patch the emulator state, inject faults,
// read the verification records and reset.
//
// Tests that run the msp-hostsim binary use it against --control-addr;
// tests that start an in-process hostsim.Emulator may call its methods
// directly instead. Errors returned for a 4xx/5xx answer are *Error values
// carrying the status and the emulator's message.
//
// Specification: ../shared/spec/host-protocol.md §11; issue 3.
package control
