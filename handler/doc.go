// Package handler implements msp-handler, the VM extension handler that
// installs, configures, supervises and removes msp-agent as waagent drives
// it (handler-contract.md §5): Run dispatches a verb through one operation
// table (azure-extension-platform's vmextension style: operation →
// callback, status reporting and failure exit code per entry), with
// everything it reads from the machine behind the Environment interface so
// tests inject a fake.
//
// Verbs: install, enable, disable, update, uninstall, resetstate (from
// HandlerManifest.json), and the long-running monitor and supervise that
// enable starts. Every waagent verb writes status/<seq>.status itself —
// transitioning first for enable — and exits with the codes of
// handler-contract.md §8.6 plus 11 for invalid settings (ExitCode*).
//
// The parts live in subpackages: henv (HandlerEnvironment.json, sequence
// number, mrseq), settings (public/protected settings), status (status,
// heartbeat, events), agentsvc (the agent's files, config and service),
// supervisor (the built-in supervisor), osgate (supported OS and kernel).
// azure-extension-foundation is used only for the `openssl smime`
// fallback of protected settings (settings.FoundationSmime); the rest is
// written here because the foundation ignores ConfigSequenceNumber, has no
// eventsFolder, substatus or code, and wraps errors in stack traces (see
// the subpackages' docs).
//
// Specification: ../shared/spec/handler-contract.md; issue 10.
package handler
