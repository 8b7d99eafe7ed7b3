package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/cgroup2"
	"golang.org/x/sys/unix"
)

// Links are the bpf_link attachments made by Attach. Close detaches them
// (they also vanish when the process exits) unless they are pinned
// (Options.PinDir): then Close only drops this process's handles.
type Links struct {
	links []link.Link
}

// hook is one program and where it attaches.
type hook struct {
	name   string // program name, as the kernel reports it
	attach ebpf.AttachType
	pin    string // its link's pin is link_<pin> under Options.PinDir
}

// hooks lists the programs in attach order: sockops and getpeername first,
// so no connect is redirected before its record can be moved.
var hooks = []hook{
	{proxyProgMspSockops, ebpf.AttachCGroupSockOps, "sockops"},
	{proxyProgMspGetpeer4, ebpf.AttachCgroupInet4GetPeername, "getpeername4"},
	{proxyProgMspGetpeer6, ebpf.AttachCgroupInet6GetPeername, "getpeername6"},
	{proxyProgMspConnect4, ebpf.AttachCGroupInet4Connect, "connect4"},
	{proxyProgMspConnect6, ebpf.AttachCGroupInet6Connect, "connect6"},
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
//
// With Options.PinDir the links are pinned there and outlive the process:
// a link already pinned for the same cgroup and hook gets the new program
// swapped in atomically (no moment without a program); otherwise a new link
// is attached and pinned, and only then is the old pinned link detached.
// Hooks go in the order sockops, getpeername, connect. After the links,
// new maps (created or replaced) are pinned over the old pins, the layout
// fingerprint last. Closing the Links then closes only this process's
// handles; [RemovePins] detaches them.
func (o *Objects) Attach(path string) (*Links, error) {
	cg, err := cgroup2.Open(path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	var cgID uint64
	if o.pins != nil {
		var st unix.Stat_t
		if err := unix.Fstat(int(cg.Fd()), &st); err != nil {
			return nil, fmt.Errorf("stat cgroup %q: %w", path, err)
		}
		cgID = st.Ino // a cgroup2 directory's inode number is the cgroup id
	}
	l := &Links{}
	for _, h := range hooks {
		var lk link.Link
		var err error
		if o.pins != nil {
			lk, err = attachPinned(cg, cgID, h, o.program(h.name), o.pins.Dir)
		} else {
			lk, err = link.AttachRawLink(link.RawLinkOptions{
				Target:  int(cg.Fd()),
				Program: o.program(h.name),
				Attach:  h.attach,
			})
		}
		if err != nil {
			l.Close()
			if isNotSupported(err) {
				return nil, &UnsupportedError{Feature: "bpf_link for cgroup programs", MinKernel: "5.7", Err: err}
			}
			return nil, fmt.Errorf("attach %s to cgroup %q: %w", h.name, path, privilegeHint(err))
		}
		l.links = append(l.links, lk)
	}
	if o.pins != nil && o.pins.State != PinsAdopted {
		if err := o.pinMaps(o.pins); err != nil {
			l.Close()
			return nil, fmt.Errorf("attach to cgroup %q: %w", path, err)
		}
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

// Close detaches every program, or, when pinned, leaves them attached.
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
