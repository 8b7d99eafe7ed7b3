// Package config reads the agent's configuration file
// (/etc/msp-agent/config.json, issue 9 item 2): JSON, strict, every field
// optional with the defaults of Default, and the extension's settings
// items read with rulefile.ParseSettingsItem.
//
// Place: the daemon loads it once at start (Load, or NewWatcher) and
// reloads it on SIGHUP (Watcher.Reload) and on a change of the file
// (Watcher.Run / Check, polling size, times, inode and the content hash);
// a new file that fails to load is reported and the last good Config stays
// in force. A Config is immutable once returned.
//
// Error contract: a missing DefaultPath means the defaults; any other
// missing file is an error. An unknown field, a duplicate key, trailing
// data, a wrong type or a bad value is an *Error whose one-line message
// names the file, the JSON path and the fix, e.g.
// `config /etc/msp-agent/config.json: limits.dialSeconds: 0: want a whole
// number 1-300`. Settings item problems are reported under their path
// (`settings.imds.rules.roles[0].privileges[0]: no privilege named "x"`).
//
// The listener must be a loopback address; the endpoints may be any
// IP:PORT (tests point them at loopback aliases).
//
// Specification: issue 9 item 2; agent.md §5.5 (limits), §8;
// ebpf.md §6.7 (netnsPolicy); authorization.md §1 (settings).
package config
