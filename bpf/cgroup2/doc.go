// Package cgroup2 finds and opens the cgroup2 hierarchy the eBPF programs
// attach to. The mount point is read from /proc/self/mounts, never assumed:
// it is /sys/fs/cgroup on unified hosts and /sys/fs/cgroup/unified on
// hybrid ones (ebpf.md §3).
//
// It has no eBPF dependency, so both package bpf and the test support in
// bpf/bpftest use it.
package cgroup2
