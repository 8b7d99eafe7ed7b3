// SPDX-License-Identifier: GPL-2.0-only
//go:build ignore

/*
 * Redirects TCP connections to the metadata endpoints to the local signing
 * proxy and records, in the caller's context, who made each connection.
 *
 *   connect4/6   target? -> other netns? -> exempt (host netns only)? -> agent listener?
 *                -> record + rewrite
 *   sockops      TCP_CONNECT_CB to the proxy: copy by_cookie[cookie] to
 *                by_port[{local ip, local port}] and ask for state callbacks;
 *                without a by_cookie record, delete by_port[local] instead
 *                STATE_CB -> CLOSE: delete both entries of the socket
 *   getpeername  the client sees the original destination (from by_cookie), not the proxy
 *
 * A record lives exactly as long as the client socket that made it: it is
 * deleted when that socket reaches TCP_CLOSE (also when the connection was
 * never accepted), and a connection to the proxy that was not redirected
 * wipes whatever by_port holds for its source address, so no other socket
 * can be served under the record of an abandoned one (issue 15.3).
 *
 * With FLAG_TASK_INFO (kernel BTF) connect4/6 also read the caller's
 * effective uid, executable (device, inode) and the start time of its
 * thread group leader from the task struct (issue 15.5/15.6). The kernel
 * types below are CO-RE relocated against the running kernel's BTF; without
 * it the loader clears the flag and passes an empty BTF, so the relocated
 * loads are poisoned in a branch the verifier never visits.
 *
 * An SK_STORAGE map for the destination (ebpf.md §6.8) was measured at
 * ~0.9 µs more per redirected connect, so it is not used.
 *
 * Design and byte layouts: shared/spec/ebpf.md §6; issues 5, 15, 16.
 */
#include "include/msp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* config.flags (ebpf.md §6.2). */
#define FLAG_NETNS_GUARD (1 << 0)	/* other network namespaces are not redirected */
#define FLAG_LISTENER_CHECK (1 << 1)	/* redirect only while the agent listens */
#define FLAG_DENY_OTHER_NETNS (1 << 2)	/* with the guard: refuse instead of pass */
#define FLAG_TASK_INFO (1 << 3)		/* read the task struct (needs kernel BTF) */

/* target.flags. */
#define TARGET_FAIL_CLOSED (1 << 0)	/* no agent listener: connect() fails with EPERM */

/* Verdicts of cgroup sock_addr programs. */
#define VERDICT_DENY 0	/* connect() returns EPERM */
#define VERDICT_ALLOW 1

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htonl(x) __builtin_bswap32(x)
#else
#define bpf_htonl(x) (x)
#endif
#define bpf_ntohl(x) bpf_htonl(x)

#define CORE __attribute__((preserve_access_index))

/*
 * Kernel-internal types, only the members read here, under the kernel's
 * names: clang emits a CO-RE relocation for every access and the loader
 * rewrites the offsets for the running kernel. The pointers come from
 * bpf_get_current_task_btf, so the verifier types every load (a NULL
 * pointer on the way reads as 0) and no bpf_probe_read is needed.
 */
typedef struct {
	__u32 val;
} kuid_t;

struct cred {
	kuid_t euid;
} CORE;

struct super_block {
	__u32 s_dev;		/* dev_t: MAJOR << 20 | MINOR */
} CORE;

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} CORE;

struct file {
	struct inode *f_inode;
} CORE;

struct mm_struct {
	struct file *exe_file;
} CORE;

struct task_struct {
	const struct cred *cred;
	struct mm_struct *mm;
	struct task_struct *group_leader;
	__u64 start_boottime;	/* ns since boot, as /proc/<pid>/stat field 22 */
} CORE;

struct target_key {		/* 8 bytes */
	__u32 ip4;		/* network byte order, as ctx->user_ip4 */
	__u16 port;		/* network byte order */
	__u16 pad;		/* 0 */
};

struct target {			/* 8 bytes */
	__u32 endpoint;		/* 1 WireServer, 2 HostGAPlugin, 3 IMDS */
	__u32 flags;		/* TARGET_* */
};

struct config {			/* 32 bytes */
	__u32 proxy_ip4;	/* network byte order */
	__u16 proxy_port;	/* network byte order */
	__u16 flags;		/* FLAG_* */
	__u32 exempt_mark;	/* SO_MARK of the agent's own sockets, 0 = off */
	__u32 exempt_tgid;	/* agent tgid, 0 = off */
	__u64 host_netns_cookie;
	__u32 listener_mark;	/* SO_MARK required on the proxy listener, 0 = any */
	__u32 pad;
};

struct conn_record {		/* 96 bytes: ebpf.md §6.2, netns_cookie, task identity */
	__u64 cookie;		/* socket cookie */
	__u64 cgroup_id;
	__u32 tgid;
	__u32 tid;
	__u32 uid;		/* real uid */
	__u32 gid;		/* real gid */
	__u32 orig_ip4;		/* network byte order */
	__u16 orig_port;	/* network byte order */
	__u16 family;		/* AF_INET, or AF_INET6 for a v4-mapped destination */
	char comm[16];
	__u64 netns_cookie;
	/* Read from the task struct when task_info is 1 (FLAG_TASK_INFO). */
	__u64 exe_ino;		/* inode of current->mm->exe_file */
	__u64 start_time;	/* current->group_leader->start_boottime, ns */
	__u32 exe_dev;		/* kernel dev_t of the exe's super block */
	__u32 euid;		/* current->cred->euid */
	__u32 task_info;	/* 1: the four fields above were read */
	__u32 pad;
};

struct port_key {		/* 8 bytes */
	__u32 local_ip4;	/* network byte order */
	__u32 local_port;	/* HOST byte order */
};

enum counter {
	COUNTER_REDIRECTED,
	COUNTER_EXEMPTED,
	COUNTER_FAILED_OPEN,
	COUNTER_FAILED_CLOSED,
	COUNTER_NETNS_PASSED,
	COUNTER_NETNS_DENIED,
	COUNTER_RECORD_ERRORS,
	COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct target_key);
	__type(value, struct target);
} targets SEC(".maps");

/* Written by Load before the programs are verified: a frozen .rodata map,
 * so the verifier knows the values and prunes the disabled branches. */
volatile const struct config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_record);
} by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct port_key);
	__type(value, struct conn_record);
} by_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

/* agent_listening reports whether the agent's listener, recognised by its
 * SO_MARK, accepts on the proxy address in the caller's netns (§6.6). */
static __always_inline int agent_listening(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	int ok;

	tuple.ipv4.daddr = cfg.proxy_ip4;
	tuple.ipv4.dport = cfg.proxy_port;
	sk = bpf_sk_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	ok = cfg.listener_mark == 0 || sk->mark == cfg.listener_mark;
	bpf_sk_release(sk);
	return ok;
}

/* read_task copies the caller's task identity into rec. Only reached with
 * FLAG_TASK_INFO: without kernel BTF these loads are poisoned. */
static __always_inline void read_task(struct conn_record *rec)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct inode *exe = task->mm->exe_file->f_inode;

	rec->euid = task->cred->euid.val;
	rec->exe_ino = exe->i_ino;
	rec->exe_dev = exe->i_sb->s_dev;
	rec->start_time = task->group_leader->start_boottime;
	rec->task_info = 1;
}

/* redirect applies the policy to a connect() to ip4:port (network byte
 * order) and returns the verdict. On redirect it stores the record and the
 * original destination; the caller rewrites the context. */
static __always_inline int redirect(struct bpf_sock_addr *ctx, __u32 ip4, __u16 port,
				    __u16 family, int *redirected)
{
	struct target_key key = { .ip4 = ip4, .port = port };
	struct conn_record rec = {};
	struct target *t;
	struct bpf_sock *sk;
	__u64 pid_tgid;
	__u64 uid_gid;
	int host_netns;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return VERDICT_ALLOW;
	t = bpf_map_lookup_elem(&targets, &key);
	if (!t)
		return VERDICT_ALLOW;

	/* Another netns has its own loopback where no agent listens (§6.7).
	 * Checked before the exemptions: a process that owns its network
	 * namespace may set any SO_MARK there (issue 15.4). */
	pid_tgid = bpf_get_current_pid_tgid();
	rec.netns_cookie = bpf_get_netns_cookie(ctx);
	host_netns = rec.netns_cookie == cfg.host_netns_cookie;
	if ((cfg.flags & FLAG_NETNS_GUARD) && !host_netns) {
		if (cfg.flags & FLAG_DENY_OTHER_NETNS) {
			count(COUNTER_NETNS_DENIED);
			return VERDICT_DENY;
		}
		count(COUNTER_NETNS_PASSED);
		return VERDICT_ALLOW;
	}

	/* The agent's own upstream sockets (§6.5), which live in the host
	 * netns; also without the guard, a mark set elsewhere exempts nothing. */
	sk = ctx->sk;
	if (host_netns && ((cfg.exempt_mark && sk && sk->mark == cfg.exempt_mark) ||
			   (cfg.exempt_tgid && (__u32)(pid_tgid >> 32) == cfg.exempt_tgid))) {
		count(COUNTER_EXEMPTED);
		return VERDICT_ALLOW;
	}

	if ((cfg.flags & FLAG_LISTENER_CHECK) && !agent_listening(ctx)) {
		if (t->flags & TARGET_FAIL_CLOSED) {
			count(COUNTER_FAILED_CLOSED);
			return VERDICT_DENY;
		}
		count(COUNTER_FAILED_OPEN);
		return VERDICT_ALLOW;
	}

	/* Identity is taken here, in the caller's syscall context (§5). */
	uid_gid = bpf_get_current_uid_gid();
	rec.cookie = bpf_get_socket_cookie(ctx);
	rec.cgroup_id = bpf_get_current_cgroup_id();
	rec.tgid = pid_tgid >> 32;
	rec.tid = (__u32)pid_tgid;
	rec.uid = (__u32)uid_gid;
	rec.gid = uid_gid >> 32;
	rec.orig_ip4 = ip4;
	rec.orig_port = port;
	rec.family = family;
	bpf_get_current_comm(rec.comm, sizeof(rec.comm));
	if (cfg.flags & FLAG_TASK_INFO)
		read_task(&rec);
	if (bpf_map_update_elem(&by_cookie, &rec.cookie, &rec, BPF_ANY))
		count(COUNTER_RECORD_ERRORS);
	count(COUNTER_REDIRECTED);
	*redirected = 1;
	return VERDICT_ALLOW;
}

SEC("cgroup/connect4")
int msp_connect4(struct bpf_sock_addr *ctx)
{
	int redirected = 0;
	int verdict;

	verdict = redirect(ctx, ctx->user_ip4, (__u16)ctx->user_port, AF_INET, &redirected);
	if (redirected) {
		ctx->user_ip4 = cfg.proxy_ip4;
		ctx->user_port = cfg.proxy_port;
	}
	return verdict;
}

/* An AF_INET6 socket dialling ::ffff:a.b.c.d fires only connect6 (§4). */
SEC("cgroup/connect6")
int msp_connect6(struct bpf_sock_addr *ctx)
{
	int redirected = 0;
	int verdict;

	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 || ctx->user_ip6[2] != bpf_htonl(0xffff))
		return VERDICT_ALLOW;
	verdict = redirect(ctx, ctx->user_ip6[3], (__u16)ctx->user_port, AF_INET6, &redirected);
	if (redirected) {
		ctx->user_ip6[3] = cfg.proxy_ip4;
		ctx->user_port = cfg.proxy_port;
	}
	return verdict;
}

/* local_key is the client's {local ip, local port}, as the proxy sees its
 * peer; a v4-mapped AF_INET6 socket may leave local_ip4 zero (§6.2). */
static __always_inline struct port_key local_key(struct bpf_sock_ops *skops)
{
	struct port_key key = { .local_ip4 = skops->local_ip4, .local_port = skops->local_port };

	if (!key.local_ip4)
		key.local_ip4 = skops->local_ip6[3];
	return key;
}

/* to_proxy reports whether the socket is connected to the proxy address:
 * only such connections can be served under a by_port record. */
static __always_inline int to_proxy(struct bpf_sock_ops *skops)
{
	__u32 ip4 = skops->remote_ip4;

	if (!ip4)
		ip4 = skops->remote_ip6[3];
	/* remote_port holds the network-order port in its upper 16 bits on
	 * little-endian machines: bpf_ntohl makes it the host-order value. */
	return ip4 == cfg.proxy_ip4 &&
	       bpf_ntohl(skops->remote_port) == (__u32)__builtin_bswap16(cfg.proxy_port);
}

/* on_connect runs at TCP_CONNECT_CB: after the source port is bound and
 * before the SYN is sent, so the record is in by_port before the proxy can
 * accept (§6.3). */
static __always_inline void on_connect(struct bpf_sock_ops *skops)
{
	struct port_key key = local_key(skops);
	struct conn_record *rec;
	__u64 cookie;

	if (!to_proxy(skops))
		return;
	cookie = bpf_get_socket_cookie(skops);
	rec = bpf_map_lookup_elem(&by_cookie, &cookie);
	if (!rec) {
		/* A direct connection to the proxy: whatever by_port holds for
		 * this source address belongs to a socket that is gone. */
		bpf_map_delete_elem(&by_port, &key);
		return;
	}
	if (bpf_map_update_elem(&by_port, &key, rec, BPF_ANY)) {
		count(COUNTER_RECORD_ERRORS);
		return;
	}
	/* Ask for STATE_CB on this socket, keeping flags others have set. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* on_close runs when a redirected socket reaches TCP_CLOSE: reset, timed
 * out, aborted, or closed (also on entering TIME_WAIT), accepted or not.
 * The checks run before the kernel clears the port and destination. */
static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct port_key key = local_key(skops);
	__u64 cookie;

	/* Another socket may share the local port towards another
	 * destination (and another program may have asked for state
	 * callbacks): only the proxy connection owns by_port[key]. */
	if (!to_proxy(skops))
		return;
	bpf_map_delete_elem(&by_port, &key);
	cookie = bpf_get_socket_cookie(skops);
	bpf_map_delete_elem(&by_cookie, &cookie);
}

SEC("sockops")
int msp_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

/* The record stays in by_cookie for the socket's life (until it closes, or
 * LRU eviction; cookies are never reused), so getpeername can restore the
 * destination. */
SEC("cgroup/getpeername4")
int msp_getpeer4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct conn_record *rec = bpf_map_lookup_elem(&by_cookie, &cookie);

	if (!rec)
		return 1;
	ctx->user_ip4 = rec->orig_ip4;
	ctx->user_port = rec->orig_port;
	return 1;
}

SEC("cgroup/getpeername6")
int msp_getpeer6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct conn_record *rec = bpf_map_lookup_elem(&by_cookie, &cookie);

	if (!rec || rec->family != AF_INET6)
		return 1;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0xffff);
	ctx->user_ip6[3] = rec->orig_ip4;
	ctx->user_port = rec->orig_port;
	return 1;
}
