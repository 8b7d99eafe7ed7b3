// Package authz decides whether a redirected metadata request may proceed:
// it compiles an authorization item (host payload, extension settings, local
// rule file) into an immutable Snapshot and answers Decide for each request.
//
// Place on the data path: the proxy (agent/proxy) calls Snapshot.Decide at
// step 10 of agent.md §5.2, after its own framing and method checks and
// before the claims and signature headers are added. The rules come from
// hostproto.KeyStatus.Item (host v2 payload), the handler's settings and the
// local rule files (authorization.md §1, §6). The Snapshot for HostGAPlugin
// is the WireServer one; Decide receives the endpoint only for the root
// requirement.
//
// Invariants (authorization.md §8):
//   - Matching works on a derived canonical form (Canonical, §4.4); the
//     request target is never rewritten, so what is signed and forwarded is
//     what the client sent (I-22).
//   - Everything fails closed: unknown modes are enforced (I-20), malformed
//     local files and settings give a deny-all Snapshot with the mode kept
//     (I-14, I-16, I-17), identity selectors with an empty caller value never
//     match.
//   - A Snapshot is immutable and safe for concurrent use; Decide does not
//     allocate on the hot path.
//
// Error contract: nothing here returns an error. Compilation of host items
// is lenient and reports defects through Snapshot.Warnings; strictly read
// sources (package rulefile) that failed are passed to Merge as errors and
// make the snapshot deny everything. CheckPath and Canonical.Parse return
// errors matching ErrPathRejected.
//
// Use: per endpoint, snap := authz.Merge(authz.Input{Host: ks.Item(ep),
// Settings: …, Local: …, LocalErr: …}); then for each request
// snap.Decide(authz.Request{Endpoint, Method, Target}, caller). Recompile
// when Snapshot.Hash of the new inputs differs.
//
// Specification: ../shared/spec/authorization.md; reason codes §9.
package authz
