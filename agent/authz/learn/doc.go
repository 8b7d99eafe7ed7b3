// Package learn turns the agent's audit log into an allowlist and replays
// the log through a candidate allowlist (issue 14): the two halves of
// moving an endpoint from audit to enforce.
//
// Suggest admits every request the agent forwarded (allow and audit-deny
// lines) and as little else as it can: one identity per observed caller
// (by user, group, executable, or user and executable), one privilege per
// observed canonical path, generalised to its parent only where the data
// shows many different children under it (never to fewer than two
// segments under /metadata, never to /), a query constraint where a
// privilege was always called with the same value (api-version excepted:
// it changes with SDK upgrades and protects nothing; and only under
// defaultAccess deny, where a request with another value is denied rather
// than falling through to allow), and one role per identity. Paths and query values are read with the agent's own
// canonical form (authz.Canonical), so what the suggestion covers is what
// the matcher will match.
//
// Impact replays every recorded request through a candidate item with the
// agent's own authz.Snapshot, as if the endpoint were enforced, and counts
// per caller and endpoint what would be allowed and denied, with the first
// denied examples and their reason codes.
package learn
