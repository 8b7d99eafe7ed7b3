// Package identity turns the kernel's record of a redirected connect()
// into the caller the proxy authorizes and audits (agent.md §5.1,
// authorization.md §4.3): uid, gid, tgid and comm come from the record;
// user and group names, the executable, the process name and the
// (redacted) command line are enriched from /proc and the user database,
// and stay empty whenever /proc no longer describes the process that
// connected. An empty value never matches a selector, so every failure
// here fails closed.
//
// Place on the data path: the proxy calls Resolver.Resolve once per
// accepted connection with the record redirect.Take returned, and passes
// Caller.Authz() to authz and the caller to the audit log.
//
// Which process: /proc/<tgid> is opened once and every file is read
// relative to that directory, which stays bound to the process it was
// opened for (reads fail once it exits, even if the pid is reused). The
// /proc-derived fields (supplementary groups, ExePath, ProcessName,
// CmdLine) are kept only when all of these hold, and are all empty
// otherwise:
//   - the comm of the thread that called connect() (/proc/<tgid>/stat, or
//     task/<tid>/stat for another thread) equals the record's;
//   - that thread's real uid and gid (its status Uid:/Gid: lines) equal the
//     record's, so a process that changed identity since connect() is not
//     described by its new groups;
//   - /proc/<tgid>/exe can be stat'ed and read, and its device and inode
//     did not change while the command line was read (an exec during
//     Resolve);
//   - with Record.TaskInfo (kernel with BTF): the start time of the thread
//     group leader (stat field 22, USER_HZ ticks) equals Record.StartTime
//     at tick precision, which defeats pid reuse, and the executable's
//     device and inode equal Record.ExeDev/ExeIno, which defeats an exec()
//     after connect() and a comm set with prctl(PR_SET_NAME).
//
// Without TaskInfo only comm and the ids are compared: a process can name
// itself like another one, or exec a different binary after connect(), and
// a reused pid with the same comm and ids passes. ExePath and ProcessName
// (the exePath and processName selectors) are then advisory: do not build
// a deny rule or a sole allow criterion on them.
//
// Root (runAsElevated, the WireServer/HostGAPlugin root requirement) is
// true only when the real and the effective uid are both 0: with TaskInfo
// from the record (the effective uid of the thread at connect()), otherwise
// from the verified thread's status Uid: line at accept; unknown means not
// root.
//
// Groups are the names of the record's primary gid followed by the
// process's supplementary groups from /proc (the groups the kernel
// enforces, authorization.md §4.3), never the user database's membership
// lists. When /proc cannot be trusted only the primary group remains.
//
// Names come from /etc/passwd and /etc/group, parsed without cgo or NSS
// (users known only to LDAP, SSSD or Azure AD login have no name), cached
// per id with a TTL (60 s) in bounded caches, never per pid.
//
// The command line is the first four arguments joined with spaces, secrets
// redacted (see Redact), at most 1 KiB.
//
// Privileges: reading /proc/<pid>/exe of another user's process needs
// CAP_SYS_PTRACE (the ptrace read-access check); a service unit that
// restricts capabilities must keep it, or the executable of every non-root
// caller stays empty and its exePath/processName selectors never match.
package identity
