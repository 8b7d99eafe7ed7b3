/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * Minimal, self-contained kernel UAPI subset for proxy.bpf.c.
 *
 * The context structs are copied from include/uapi/linux/bpf.h (the kernel
 * keeps them append-only, so their offsets are ABI); helper IDs are the
 * positions in ___BPF_FUNC_MAPPER. Vendoring them instead of including
 * <linux/bpf.h> keeps the object independent of the build machine's
 * linux-libc-dev version and architecture include directory, so `make bpf`
 * reproduces the committed object byte for byte (issue 5, deliverable 1).
 */
#ifndef MSP_BPF_H
#define MSP_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef __u16 __be16;
typedef __u32 __be32;

/* Map types (enum bpf_map_type). */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_SK_STORAGE 24

/* Flags. */
#define BPF_ANY 0
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_F_CURRENT_NETNS (-1L)
#define BPF_SK_STORAGE_GET_F_CREATE (1ULL << 0)

/* Socket constants. */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6

/* enum bpf_sock_ops op values. */
#define BPF_SOCK_OPS_TCP_CONNECT_CB 3
#define BPF_SOCK_OPS_STATE_CB 10	/* args[0] old state, args[1] new state */

/* bpf_sock_ops_cb_flags bits. */
#define BPF_SOCK_OPS_STATE_CB_FLAG (1 << 2)

/* TCP states as BPF_SOCK_OPS_STATE_CB reports them. */
#define BPF_TCP_CLOSE 7

#define __bpf_md_ptr(type, name) \
	union {                  \
		type name;       \
		__u64 :64;       \
	} __attribute__((aligned(8)))

struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 mark;
	__u32 priority;
	__u32 src_ip4;
	__u32 src_ip6[4];
	__u32 src_port;
	__be16 dst_port;
	__u16 :16;
	__u32 dst_ip4;
	__u32 dst_ip6[4];
	__u32 state;
	__s32 rx_queue_mapping;
};

struct bpf_sock_tuple {
	union {
		struct {
			__be32 saddr;
			__be32 daddr;
			__be16 sport;
			__be16 dport;
		} ipv4;
		struct {
			__be32 saddr[4];
			__be32 daddr[4];
			__be16 sport;
			__be16 dport;
		} ipv6;
	};
};

struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;		/* network byte order */
	__u32 user_ip6[4];	/* network byte order */
	__u32 user_port;	/* network byte order */
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	__bpf_md_ptr(struct bpf_sock *, sk);
};

/* Truncated after state: the fields this program reads keep their UAPI offsets. */
struct bpf_sock_ops {
	__u32 op;
	union {
		__u32 args[4];
		__u32 reply;
		__u32 replylong[4];
	};
	__u32 family;
	__u32 remote_ip4;	/* network byte order */
	__u32 local_ip4;	/* network byte order */
	__u32 remote_ip6[4];	/* network byte order */
	__u32 local_ip6[4];	/* network byte order */
	__u32 remote_port;	/* network byte order */
	__u32 local_port;	/* host byte order */
	__u32 is_fullsock;
	__u32 snd_cwnd;
	__u32 srtt_us;
	__u32 bpf_sock_ops_cb_flags;
	__u32 state;
};

/* BTF map definitions, as libbpf's bpf_helpers.h spells them. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))

/* Helpers: the number is the helper ID of ___BPF_FUNC_MAPPER. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, __u32 size) = (void *)16;
static __u64 (*bpf_get_socket_cookie)(void *ctx) = (void *)46;
static long (*bpf_sock_ops_cb_flags_set)(struct bpf_sock_ops *skops, int flags) = (void *)59;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static struct bpf_sock *(*bpf_sk_lookup_tcp)(void *ctx, struct bpf_sock_tuple *tuple, __u32 tuple_size, __u64 netns, __u64 flags) = (void *)84;
static long (*bpf_sk_release)(void *sock) = (void *)86;
static void *(*bpf_sk_storage_get)(void *map, void *sk, void *value, __u64 flags) = (void *)107;
static __u64 (*bpf_get_netns_cookie)(void *ctx) = (void *)122;
struct task_struct;
static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;

#endif /* MSP_BPF_H */
