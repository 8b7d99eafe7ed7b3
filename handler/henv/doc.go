// Package henv reads what waagent lays out for a handler: the handler
// root, HandlerEnvironment.json, the sequence number of the command and
// the handler's own marker of the last processed settings (mrseq plus a
// settings hash).
//
// Written by hand rather than with azure-extension-foundation: the
// foundation's HandlerEnvironment has no eventsFolder, looks only next to
// os.Args[0], and its sequence package ignores ConfigSequenceNumber, takes
// the highest-numbered settings file instead of the newest and reads mrseq
// relative to the working directory (handler-contract.md §3.3, §3.4, §7.2).
//
// Specification: ../shared/spec/handler-contract.md §2, §3.3, §3.4.
package henv
