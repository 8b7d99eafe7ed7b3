// Package rulefile reads authorization rules strictly: `mspctl policy`
// files (ParseItem: a missing mode means enforce), the extension's settings
// items (ParseSettingsItem: a missing mode stays "" and follows the host)
// and the local rule files under /var/lib/msp-agent/rules (ParseLocal,
// LocalFiles).
//
// Place on the data path: the agent reads the local file of each endpoint
// on every poll and the handler hands over the settings; both results go
// into authz.Input, whose Merge compiles the endpoint's snapshot. Host
// payload items do not come through here: they are compiled leniently by
// authz (authorization.md §3).
//
// Invariants: a duplicate JSON key at any depth, trailing data, invalid
// UTF-8, an empty or oversized document, an unknown field, a dangling
// reference, a duplicate name and an empty selector are all errors
// (authorization.md §6.3, §6.5, I-14…I-17); a UTF-8 BOM is tolerated
// (I-15); a local file's mode is ignored (I-18). The caller fails closed on
// any error but ErrNoFile.
//
// Error contract: parse errors are a *ValidationError listing every
// problem as "json.path: message" (e.g. `rules.roles[1].privileges[0]: no
// privilege named "x"`); LocalFiles.Read adds file-system errors that name
// the path and the fix. The JSON Schemas in schema/ (Schemas) describe the
// same documents for editors and other tools.
//
// Specification: ../shared/spec/authorization.md §2 and §6.
package rulefile
