// Package settings reads the extension's runtime settings from
// <configFolder>/<seq>.settings: the public settings, validated against
// schema/public-settings.schema.json (which reuses the authorization item
// schema of agent/authz/rulefile) and then by the strict item loader
// (rulefile.ParseItem); and the protected settings, decrypted with the VM's
// tenant certificate the way waagent leaves it (<LIB>/<thumbprint>.crt and
// .prv), with `openssl cms`, falling back to `openssl smime`.
//
// Invalid settings are an *InvalidError listing every problem as
// "json.path: message"; the handler reports it and exits 11 while the agent
// keeps its last good configuration. Decrypted protected settings are kept
// only in memory, never logged, never written; today they carry nothing and
// only have to be a JSON object.
//
// azure-extension-foundation's settings.GetExtensionSettings is the smime
// fallback (FoundationSmime): it finds HandlerEnvironment.json next to the
// running binary, as waagent lays it out. Everything else is written here
// because the foundation decodes public settings into a map (losing
// duplicate keys and the exact item bytes the strict loader needs), knows
// only `smime`, and wraps errors with stack traces unfit for a status file.
//
// Specification: ../shared/spec/handler-contract.md §3.1, §3.2; issue 10
// item 3.
package settings
