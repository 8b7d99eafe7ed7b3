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
// One reading of the target (I-24, with I-4, I-5, I-7): CheckTarget is
// the single source of truth; the proxy calls it after reading the head
// and before anything else looks at the target, Decide applies the same
// checks (Canonical.Parse) and denies with the same reason, `mspctl sign`
// and `mspctl policy explain` refuse the same targets (exit 2). In every
// mode, with the raw path the target up to its first '?' and the raw
// query the rest:
//   - 400 bad-request-line (rawhttp.CheckTarget, also at the request line):
//     not origin form, or a raw byte other than ALPHA DIGIT
//     -._~!$&'()*+,;=:@/?% (so no space, '\', '#', '"', '<', '>', '[',
//     ']', '{', '}', '|', '^', '`', control or non-ASCII byte);
//   - 403 path-rejected, raw path: "//"; a '%' not followed by two hex
//     digits (%uNNNN); an escape decoding to a byte >= 0x80; %25; %5C;
//   - 403 path-rejected, raw query: a '%' not followed by two hex digits;
//     an escape decoding to a byte >= 0x80;
//   - 403 path-rejected, raw path decoded once: a control byte or ".."
//     anywhere (embedded %3F query included); before the first decoded '?':
//     "//", a segment "." (also before ;params), a segment ending in '.' or
//     space (the whole segment or its part before ';'), a segment empty
//     once its ;params are removed (but a final "/").
//
// Root: a caller is root (Caller.Root, Caller.Elevated) only when its real
// and effective uid are both 0; unknown means not root. Only such a caller
// passes the WireServer/HostGAPlugin requirement and has the two exempt
// requests skip the rules.
//
// Executable selectors (exePath, processName) are only as trustworthy as
// the caller's ExePath and ProcessName, which agent/identity fills only
// when /proc/<tgid>/exe at accept is the file the kernel saw at connect():
// same device and inode and the same process start time, captured by the
// eBPF programs from the task (needs kernel BTF). On a kernel without BTF
// that check is reduced to the comm and uids, so a process that execs
// another binary after connect() (keeping the socket) could be seen as
// that binary: there, treat exePath and processName as advisory and pair
// them with userName or groupName, which come from the kernel's record.
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
// Error contract: only the target checks return errors. Compilation of
// host items is lenient and reports defects through Snapshot.Warnings;
// strictly read sources (package rulefile) that failed are passed to Merge
// as errors and make the snapshot deny everything. CheckTarget returns a
// *TargetError (Status, Reason, Msg); it and Canonical.Parse match
// ErrPathRejected for the 403 class.
//
// Use: per endpoint, snap := authz.Merge(authz.Input{Host: ks.Item(ep),
// Settings: …, Local: …, LocalErr: …}); then for each request
// snap.Decide(authz.Request{Endpoint, Method, Target}, caller). Recompile
// when Snapshot.Hash of the new inputs differs.
//
// Specification: ../shared/spec/authorization.md; reason codes §9.
package authz
