// SPDX-License-Identifier: GPL-2.0-only
//go:build ignore

/*
 * Redirects TCP connections to the metadata endpoints to the local signing
 * proxy and records, in the caller's context, who made each connection.
 *
 *   connect4/6   target? -> exempt? -> other netns? -> agent listener? -> record + rewrite
 *   sockops      TCP_CONNECT_CB: copy by_cookie[cookie] to by_port[{local ip, local port}]
 *   getpeername  the client sees the original destination (from by_cookie), not the proxy
 *
 * by_cookie keeps each record for the socket's life (LRU-evicted; cookies are
 * never reused) so getpeername can read it; the proxy takes the by_port copy.
 * An SK_STORAGE map for the destination (ebpf.md §6.8) was measured at
 * ~0.9 µs more per redirected connect, so it is not used.
 *
 * Design and byte layouts: shared/spec/ebpf.md §6; issue 5.
 */
#include "include/msp_bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* config.flags (ebpf.md §6.2). */
#define FLAG_NETNS_GUARD (1 << 0)	/* other network namespaces are not redirected */
#define FLAG_LISTENER_CHECK (1 << 1)	/* redirect only while the agent listens */
#define FLAG_DENY_OTHER_NETNS (1 << 2)	/* with the guard: refuse instead of pass */

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

struct conn_record {		/* 64 bytes: ebpf.md §6.2 plus netns_cookie at the end */
	__u64 cookie;		/* socket cookie */
	__u64 cgroup_id;
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 orig_ip4;		/* network byte order */
	__u16 orig_port;	/* network byte order */
	__u16 family;		/* AF_INET, or AF_INET6 for a v4-mapped destination */
	char comm[16];
	__u64 netns_cookie;
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

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return VERDICT_ALLOW;
	t = bpf_map_lookup_elem(&targets, &key);
	if (!t)
		return VERDICT_ALLOW;

	/* The agent's own upstream sockets (§6.5). */
	sk = ctx->sk;
	pid_tgid = bpf_get_current_pid_tgid();
	if ((cfg.exempt_mark && sk && sk->mark == cfg.exempt_mark) ||
	    (cfg.exempt_tgid && (__u32)(pid_tgid >> 32) == cfg.exempt_tgid)) {
		count(COUNTER_EXEMPTED);
		return VERDICT_ALLOW;
	}

	/* Another netns has its own loopback where no agent listens (§6.7). */
	rec.netns_cookie = bpf_get_netns_cookie(ctx);
	if ((cfg.flags & FLAG_NETNS_GUARD) && rec.netns_cookie != cfg.host_netns_cookie) {
		if (cfg.flags & FLAG_DENY_OTHER_NETNS) {
			count(COUNTER_NETNS_DENIED);
			return VERDICT_DENY;
		}
		count(COUNTER_NETNS_PASSED);
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

/* TCP_CONNECT_CB runs after the source port is bound and before the SYN is
 * sent, so the record is in by_port before the proxy can accept (§6.3). */
SEC("sockops")
int msp_sockops(struct bpf_sock_ops *skops)
{
	struct conn_record *rec;
	struct port_key key;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	rec = bpf_map_lookup_elem(&by_cookie, &cookie);
	if (!rec)
		return 1;
	key.local_ip4 = skops->local_ip4;
	if (!key.local_ip4)
		key.local_ip4 = skops->local_ip6[3];
	key.local_port = skops->local_port;
	if (bpf_map_update_elem(&by_port, &key, rec, BPF_ANY))
		count(COUNTER_RECORD_ERRORS);
	return 1;
}

/* The record stays in by_cookie for the socket's life (until LRU eviction;
 * cookies are never reused), so getpeername can restore the destination. */
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
