// Package status writes what waagent reads back from a handler: the
// status file status/<seq>.status (handler-contract.md §4.1, §8.4), the
// heartbeat file (§4.4), and telemetry events in eventsFolder (§5.7). It
// also turns the agent's aggregate status document (agent.md §9) into the
// three substatuses of §8.4, within the file size limits, and keeps the
// monitor's transitioning/success/error state machine.
//
// Every file is written atomically (temporary name, rename), so waagent
// never reads half a document; an event's temporary name does not match
// waagent's ^\d+\.json$ pattern until the rename.
//
// Written by hand: azure-extension-foundation's status package has no
// code, substatus, name or warning state (handler-contract.md §7.2).
package status
