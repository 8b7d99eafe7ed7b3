package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// UnsupportedError names a kernel feature the redirector needs and the
// running kernel lacks. It matches [ebpf.ErrNotSupported] with errors.Is.
type UnsupportedError struct {
	Feature   string // what is missing, e.g. "helper bpf_get_netns_cookie in cgroup_sock_addr programs"
	MinKernel string // first mainline Linux version that has it
	Err       error  // the probe's error
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("kernel lacks %s (needs Linux %s or newer with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF): %v",
		e.Feature, e.MinKernel, e.Err)
}

func (e *UnsupportedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ebpf.ErrNotSupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ebpf.ErrNotSupported }
