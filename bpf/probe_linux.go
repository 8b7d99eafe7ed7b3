package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// Kernel features the programs use, with the first mainline version that has
// each (ebpf.md §4, §8). bpf_link for cgroups (5.7) is checked by Attach.
var (
	neededProgramTypes = []struct {
		typ ebpf.ProgramType
		min string
	}{
		{ebpf.CGroupSockAddr, "4.17"},
		{ebpf.SockOps, "4.13"},
	}
	neededMapTypes = []struct {
		typ ebpf.MapType
		min string
	}{
		{ebpf.Hash, "3.19"},
		{ebpf.Array, "3.19"},
		{ebpf.PerCPUArray, "4.6"},
		{ebpf.LRUHash, "4.10"},
	}
	neededHelpers = []struct {
		typ ebpf.ProgramType
		fn  asm.BuiltinFunc
		min string
	}{
		{ebpf.CGroupSockAddr, asm.FnGetCurrentPidTgid, "4.17"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentUidGid, "4.17"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentComm, "4.17"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentCgroupId, "4.18"},
		{ebpf.CGroupSockAddr, asm.FnGetSocketCookie, "5.7"},
		{ebpf.CGroupSockAddr, asm.FnGetNetnsCookie, "5.7"},
		{ebpf.CGroupSockAddr, asm.FnSkLookupTcp, "4.20"},
		{ebpf.CGroupSockAddr, asm.FnSkRelease, "4.20"},
		{ebpf.SockOps, asm.FnGetSocketCookie, "5.7"},
		{ebpf.SockOps, asm.FnMapDeleteElem, "4.13"},
		{ebpf.SockOps, asm.FnSockOpsCbFlagsSet, "4.16"},
	}
)

// Probe checks that the kernel has every program type, map type and helper
// the programs use. It returns an *UnsupportedError naming the first missing
// one, or another error when a probe could not run (usually: not root).
func Probe() error {
	for _, p := range neededProgramTypes {
		if err := features.HaveProgramType(p.typ); err != nil {
			return probeError(fmt.Sprintf("program type %s", p.typ), p.min, err)
		}
	}
	for _, m := range neededMapTypes {
		if err := features.HaveMapType(m.typ); err != nil {
			return probeError(fmt.Sprintf("map type %s", m.typ), m.min, err)
		}
	}
	for _, h := range neededHelpers {
		if err := features.HaveProgramHelper(h.typ, h.fn); err != nil {
			return probeError(fmt.Sprintf("helper %s in %s programs", h.fn, h.typ), h.min, err)
		}
	}
	return nil
}

func probeError(feature, min string, err error) error {
	if isNotSupported(err) {
		return &UnsupportedError{Feature: feature, MinKernel: min, Err: err}
	}
	return fmt.Errorf("probe %s: %w", feature, privilegeHint(err))
}

// taskInfoSupport returns the kernel's BTF when connect4/6 can read the
// caller's task struct: CO-RE needs the kernel's types, and the programs
// walk the task from bpf_get_current_task_btf. Otherwise it returns why not.
func taskInfoSupport() (*btf.Spec, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, &UnsupportedError{Feature: "kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", MinKernel: "5.5", Err: err}
	}
	if err := features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnGetCurrentTaskBtf); err != nil {
		return nil, probeError("helper get_current_task_btf in cgroup_sock_addr programs", "5.11", err)
	}
	return kernel, nil
}
