package bpf

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/bpf/cgroup2"
)

// TestRemoveLegacy leaves a stale legacy attachment of our connect4 program
// on a child cgroup, next to a live agent's bpf_link attachment and a foreign
// legacy program, and checks that only the stale one is removed.
func TestRemoveLegacy(t *testing.T) {
	t.Parallel()
	cg := bpftest.NewCgroup(t)
	cgf, err := cgroup2.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer cgf.Close()

	// The stale attachment: BPF_PROG_ATTACH, then the loader "dies".
	stale, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	staleID := programIDs(t, stale)[3] // hooks[3] is connect4
	legacyAttach(t, cg, stale.objs.MspConnect4, ebpf.AttachCGroupInet4Connect)
	stale.Close()

	// A foreign program attached the legacy way must survive.
	foreign, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "foreign4", Type: ebpf.CGroupSockAddr, AttachType: ebpf.AttachCGroupInet4Connect,
		License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	legacyAttach(t, cg, foreign, ebpf.AttachCGroupInet4Connect)
	foreignInfo, _ := foreign.Info()
	foreignID, _ := foreignInfo.ID()

	// A live agent (this test) with bpf_links on the same cgroup must survive.
	live, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveIDs := programIDs(t, live)
	links, err := live.Attach(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()

	removed, err := RemoveLegacy(cg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []ebpf.ProgramID{staleID}) {
		t.Errorf("removed %v; want only the stale program %d", removed, staleID)
	}
	attached := attachedIDs(t, cgf, ebpf.AttachCGroupInet4Connect)
	if slices.Contains(attached, staleID) {
		t.Errorf("stale program %d still attached: %v", staleID, attached)
	}
	for _, id := range []ebpf.ProgramID{foreignID, liveIDs[3]} {
		if !slices.Contains(attached, id) {
			t.Errorf("program %d was detached; attached now %v", id, attached)
		}
	}
	if again, err := RemoveLegacy(cg); err != nil || len(again) != 0 {
		t.Errorf("second RemoveLegacy = %v, %v; want nothing to remove", again, err)
	}
	requireGone(t, []ebpf.ProgramID{staleID}, nil)
}

// legacyAttach attaches prog to the cgroup at path with BPF_PROG_ATTACH and
// detaches it at cleanup if it is still there.
func legacyAttach(t *testing.T, path string, prog *ebpf.Program, at ebpf.AttachType) {
	t.Helper()
	cg, err := cgroup2.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	const allowMulti = 1 << 1 // BPF_F_ALLOW_MULTI
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: int(cg.Fd()), Program: prog, Attach: at, Flags: allowMulti})
	if err != nil {
		t.Fatalf("legacy attach: %v", err)
	}
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	t.Cleanup(func() {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return // detached and freed
		}
		defer p.Close()
		cg, err := cgroup2.Open(path)
		if err != nil {
			return
		}
		defer cg.Close()
		link.RawDetachProgram(link.RawDetachProgramOptions{Target: int(cg.Fd()), Program: p, Attach: at})
	})
}

func attachedIDs(t *testing.T, cg interface{ Fd() uintptr }, at ebpf.AttachType) []ebpf.ProgramID {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: at})
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids
}
