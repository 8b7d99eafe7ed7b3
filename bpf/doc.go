// Package bpf loads and attaches the eBPF programs that redirect connections
// to the metadata services to the local signing proxy and record, in the
// kernel, which process made each connection.
//
// On the data path it sits before the proxy: connect4/connect6 (cgroup
// sock_addr hooks) rewrite a connect() to a target address to the proxy and
// store a [Record] of the caller under the socket cookie; sockops copies it
// to the client's {local address, port} before the SYN leaves, and
// getpeername4/6 make the client see the original destination (read from
// the cookie entry). The proxy calls [Objects.Take] with the peer of each
// accepted connection.
//
// Invariants:
//   - Programs are attached only through bpf_link, so they disappear when the
//     process exits, unless Options.PinDir pins the links and maps on bpffs:
//     then they keep running with the last targets until a new Load/Attach
//     adopts or replaces them or [RemovePins] detaches them (ebpf.md §7.3).
//     [RemoveLegacy] removes stale BPF_PROG_ATTACH leftovers.
//   - A pinned link's program is swapped atomically (BPF_LINK_UPDATE), never
//     detached and reattached; pinned maps are adopted only when their
//     layout fingerprint (types, sizes, BTF of keys and values) matches this
//     build's, otherwise replaced with the targets copied over.
//   - Nothing is redirected unless the agent's listener (recognised by its
//     SO_MARK) accepts on the proxy address; otherwise each target's
//     [Policy] applies: fail open (destination unchanged) or fail closed
//     (connect() fails with EPERM).
//   - Callers in other network namespaces are judged by the netns guard
//     first; only then are sockets carrying the exemption SO_MARK (the
//     agent's own upstream connections) or the exempt tgid left alone, so a
//     process that owns a network namespace cannot exempt itself.
//   - A record lives only as long as the client socket that made it: both
//     entries go when that socket reaches TCP_CLOSE (accepted or not), and
//     a connection to the proxy that was not redirected wipes whatever
//     by_port holds for its source address before its SYN is sent. So a
//     record is never served to another socket that reuses the port.
//   - Where the kernel has BTF, records carry the caller's effective uid,
//     executable (device, inode) and process start time, read from the task
//     struct at connect(); otherwise [Objects.TaskInfo] says why not and
//     Record.TaskInfo is false.
//
// The package holds no policy: which endpoints are targets, and in which
// mode, is decided by agent/redirect. Missing kernel support is reported as
// an [*UnsupportedError], which matches [ebpf.ErrNotSupported].
//
// The C source is proxy.bpf.c; proxy_bpfel.{go,o} are generated (see gen.go)
// and committed. Specification: ../shared/spec/ebpf.md §6; issues 5, 15, 16.
package bpf
