package osgate

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/mspguest/msp/bpf"
)

// ProbeKernel runs bpf.Probe (program and map types, helpers) and checks
// that the kernel knows the sock_addr attach types the redirector uses;
// getpeername arrived in 5.8, after the rest. bpf_link for cgroups (5.7)
// is implied by the 5.7 helpers bpf.Probe checks, and verified again by
// the agent when it attaches.
func ProbeKernel() error {
	if err := bpf.Probe(); err != nil {
		return err
	}
	for _, at := range []struct {
		typ  ebpf.AttachType
		name string
		min  string
	}{
		{ebpf.AttachCGroupInet4Connect, "cgroup connect4", "4.17"},
		{ebpf.AttachCGroupInet6Connect, "cgroup connect6", "4.17"},
		{ebpf.AttachCgroupInet4GetPeername, "cgroup getpeername4", "5.8"},
		{ebpf.AttachCgroupInet6GetPeername, "cgroup getpeername6", "5.8"},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.CGroupSockAddr,
			AttachType:   at.typ,
			License:      "GPL",
			Instructions: asm.Instructions{asm.LoadImm(asm.R0, 1, asm.DWord), asm.Return()},
		})
		if err != nil {
			return fmt.Errorf("kernel lacks the %s hook (needs Linux %s or newer): %w", at.name, at.min, err)
		}
		prog.Close()
	}
	return nil
}
