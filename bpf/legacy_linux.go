package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/cgroup2"
)

// RemoveLegacy detaches stale legacy (BPF_PROG_ATTACH) attachments of this
// package's programs from the cgroup2 directory at path and returns their
// program ids. Such attachments outlive the process that made them (an older
// agent, or a fallback on kernels without bpf_link) and would keep
// redirecting with nobody to record for (ebpf.md §7.2).
//
// It queries the cgroup's attached programs per hook and removes only those
// that carry our program name for that hook AND are not held by any
// bpf_link: links belong to a live process (another agent, a test) and are
// never touched. Call it before Attach, on the cgroup Attach will use.
func RemoveLegacy(path string) ([]ebpf.ProgramID, error) {
	cg, err := cgroup2.Open(path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	linked, err := linkedPrograms()
	if err != nil {
		return nil, err
	}
	var removed []ebpf.ProgramID
	for _, h := range hooks {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: h.attach})
		if err != nil {
			return removed, fmt.Errorf("query %s programs on cgroup %q: %w", h.attach, path, privilegeHint(err))
		}
		for _, ap := range res.Programs {
			if _, viaLink := ap.LinkID(); viaLink || linked[ap.ID] {
				continue
			}
			ok, err := detachIfOurs(cg, h, ap.ID)
			if err != nil {
				return removed, fmt.Errorf("remove legacy %s program %d from cgroup %q: %w", h.name, ap.ID, path, err)
			}
			if ok {
				removed = append(removed, ap.ID)
			}
		}
	}
	return removed, nil
}

// detachIfOurs detaches program id from the hook when its name is ours.
func detachIfOurs(cg *os.File, h hook, id ebpf.ProgramID) (bool, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // gone meanwhile
	}
	if err != nil {
		return false, err
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return false, err
	}
	if info.Name != h.name {
		return false, nil
	}
	err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: int(cg.Fd()), Program: prog, Attach: h.attach})
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // detached meanwhile
	}
	return err == nil, err
}

// linkedPrograms returns the programs held by a cgroup bpf_link anywhere.
// Kernels before 6.x report no link ids in BPF_PROG_QUERY for cgroups, so
// this is what tells a live agent's attachment from a stale legacy one.
func linkedPrograms() (map[ebpf.ProgramID]bool, error) {
	linked := make(map[ebpf.ProgramID]bool)
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // closed meanwhile, or a link type without info
		}
		if info.Type == link.CgroupType {
			linked[info.Program] = true
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list bpf links: %w", privilegeHint(err))
	}
	return linked, nil
}

// Attached lists the programs attached, by link or legacy, to the cgroup2
// directory at path on this package's hooks: what an uninstall must leave
// empty.
func Attached(path string) ([]ebpf.ProgramID, error) {
	cg, err := cgroup2.Open(path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	var ids []ebpf.ProgramID
	for _, h := range hooks {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: h.attach})
		if err != nil {
			return ids, fmt.Errorf("query %s programs on cgroup %q: %w", h.attach, path, privilegeHint(err))
		}
		for _, ap := range res.Programs {
			ids = append(ids, ap.ID)
		}
	}
	return ids, nil
}
