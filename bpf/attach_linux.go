package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/cgroup2"
)

// Links are the bpf_link attachments made by Attach. Close detaches them;
// they also vanish when the process exits.
type Links struct {
	links []link.Link
}

// hook is one program and where it attaches.
type hook struct {
	name   string // program name, as the kernel reports it
	attach ebpf.AttachType
}

// hooks lists the programs in attach order: sockops and getpeername first,
// so no connect is redirected before its record can be moved.
var hooks = []hook{
	{proxyProgMspSockops, ebpf.AttachCGroupSockOps},
	{proxyProgMspGetpeer4, ebpf.AttachCgroupInet4GetPeername},
	{proxyProgMspGetpeer6, ebpf.AttachCgroupInet6GetPeername},
	{proxyProgMspConnect4, ebpf.AttachCGroupInet4Connect},
	{proxyProgMspConnect6, ebpf.AttachCGroupInet6Connect},
}

func (o *Objects) program(name string) *ebpf.Program {
	switch name {
	case proxyProgMspSockops:
		return o.objs.MspSockops
	case proxyProgMspGetpeer4:
		return o.objs.MspGetpeer4
	case proxyProgMspGetpeer6:
		return o.objs.MspGetpeer6
	case proxyProgMspConnect4:
		return o.objs.MspConnect4
	case proxyProgMspConnect6:
		return o.objs.MspConnect6
	}
	return nil
}

// Attach attaches every program to the cgroup2 directory at path with
// bpf_link (never the legacy BPF_PROG_ATTACH, whose attachments outlive the
// process). Production attaches at cgroup2.Root(); tests use a child cgroup.
// Other programs on the same hooks keep running (multi-attach).
func (o *Objects) Attach(path string) (*Links, error) {
	cg, err := cgroup2.Open(path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	l := &Links{}
	for _, h := range hooks {
		lk, err := link.AttachRawLink(link.RawLinkOptions{
			Target:  int(cg.Fd()),
			Program: o.program(h.name),
			Attach:  h.attach,
		})
		if err != nil {
			l.Close()
			if isNotSupported(err) {
				return nil, &UnsupportedError{Feature: "bpf_link for cgroup programs", MinKernel: "5.7", Err: err}
			}
			return nil, fmt.Errorf("attach %s to cgroup %q: %w", h.name, path, privilegeHint(err))
		}
		l.links = append(l.links, lk)
	}
	return l, nil
}

// IDs returns the kernel ids of the links, for status and tests.
func (l *Links) IDs() ([]link.ID, error) {
	ids := make([]link.ID, 0, len(l.links))
	for _, lk := range l.links {
		info, err := lk.Info()
		if err != nil {
			return nil, fmt.Errorf("link info: %w", err)
		}
		ids = append(ids, info.ID)
	}
	return ids, nil
}

// Close detaches every program.
func (l *Links) Close() error {
	var errs []error
	for _, lk := range l.links {
		if err := lk.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.links = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach eBPF programs: %w", err)
	}
	return nil
}

func isNotSupported(err error) bool { return errors.Is(err, ebpf.ErrNotSupported) }
