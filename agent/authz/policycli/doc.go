// Package policycli implements `mspctl policy`: validate an authorization
// item or local rule file, and explain the decision the agent would take
// for one request.
//
// It sits beside the data path, not on it: it reads a policy file with the
// agent's strict loader (rulefile.ParseItem, rulefile.ParseLocal), compiles
// it with authz.Compile and calls Snapshot.Decide exactly as the proxy
// does, so what it prints is what the agent would do.
//
// Main returns the exit code and never calls os.Exit: 0 for a valid file
// or an allow/audit decision, 3 for a deny, 2 for bad input (usage errors
// and files that fail to parse or validate). Problems are printed one per
// line as "json.path: message".
//
// Specification: issue 4 and ../shared/spec/authorization.md §9.
package policycli
