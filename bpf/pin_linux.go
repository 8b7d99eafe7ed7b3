package bpf

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// PinState is what Load found under Options.PinDir (ebpf.md §7.3).
type PinState string

const (
	// PinsOff: no PinDir, links and maps die with the process.
	PinsOff PinState = ""
	// PinsCreated: nothing of ours was pinned; new maps and links are.
	PinsCreated PinState = "created"
	// PinsAdopted: the pinned maps matched this build's layout and are
	// reused, so records written by the old programs stay readable; the new
	// programs replaced the old ones in the pinned links atomically.
	PinsAdopted PinState = "adopted"
	// PinsReplaced: the pinned maps did not match (an upgrade changed a
	// layout) or were incomplete; new maps took their pins, the targets were
	// copied over where their layout allows, and the new programs replaced
	// the old ones in the pinned links.
	PinsReplaced PinState = "replaced"
)

// Pinning reports what Load and Attach did with Options.PinDir.
type Pinning struct {
	Dir    string
	State  PinState
	Reason string // why the pins were replaced; "" otherwise
}

// pinnedMaps are the maps kept under PinDir, by their ELF names (also
// their pin names). .rodata is not pinned: it belongs to one program load.
var pinnedMaps = []string{"targets", "by_cookie", "by_port", "counters"}

// layoutPin names the one-entry array holding the layout fingerprint of
// the pinned maps. Map metadata cannot tell two conn_record layouts of the
// same size apart; the fingerprint (the maps' BTF types) can.
const layoutPin = "layout"

// pinSuffix marks a pin being written, renamed over the real one after.
const pinSuffix = "_new" // bpffs refuses names with a dot

// linkPin is the pin name of a hook's link.
func linkPin(h hook) string { return "link_" + h.pin }

// pinSet is the state carried from Load to Attach for a PinDir.
type pinSet struct {
	Pinning
	layout [sha256.Size]byte
	// Held during Load only (release closes them): the pinned maps to load
	// the programs with when adopting, else the old targets to copy.
	adopt      map[string]*ebpf.Map
	oldTargets *ebpf.Map
}

// release closes the handles held for Load.
func (ps *pinSet) release() {
	closeMaps(ps.adopt)
	ps.adopt = nil
	if ps.oldTargets != nil {
		ps.oldTargets.Close()
		ps.oldTargets = nil
	}
}

// checkPinDir makes sure dir is on a bpffs mount and exists. It never
// creates anything outside bpffs: the closest existing ancestor is checked
// first.
func checkPinDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("pin directory %q: want an absolute path on a bpffs mount such as /sys/fs/bpf/msp-agent", dir)
	}
	existing := filepath.Clean(dir)
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(existing, &fs); err != nil {
		return fmt.Errorf("pin directory %q: %w", dir, err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %q: %s is not on a bpffs mount (filesystem type %#x): mount one with `mount -t bpf bpf %s`",
			dir, existing, fs.Type, filepath.Dir(dir))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	return nil
}

// layoutFingerprint hashes what the pinned maps' users rely on: type,
// sizes, flags and the BTF of keys and values (field names and offsets).
func layoutFingerprint(spec *ebpf.CollectionSpec) ([sha256.Size]byte, error) {
	var b bytes.Buffer
	var gf btf.GoFormatter
	for _, name := range pinnedMaps {
		ms, ok := spec.Maps[name]
		if !ok {
			return [sha256.Size]byte{}, fmt.Errorf("eBPF object has no map %q", name)
		}
		fmt.Fprintf(&b, "%s %s %d %d %d %#x\n", name, ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags)
		for _, t := range []btf.Type{ms.Key, ms.Value} {
			if t == nil {
				continue
			}
			decl, err := gf.TypeDeclaration("t", t)
			if err != nil {
				return [sha256.Size]byte{}, fmt.Errorf("format BTF of map %q: %w", name, err)
			}
			b.WriteString(decl + "\n")
		}
	}
	return sha256.Sum256(b.Bytes()), nil
}

// openPins inspects dir. When every pinned map is compatible with spec
// they are kept for adoption; otherwise the result says why not and holds
// the old targets map (if any) to copy from. Call release after Load.
func openPins(dir string, spec *ebpf.CollectionSpec) (*pinSet, error) {
	if err := checkPinDir(dir); err != nil {
		return nil, err
	}
	ps := &pinSet{Pinning: Pinning{Dir: dir}}
	var err error
	if ps.layout, err = layoutFingerprint(spec); err != nil {
		return nil, err
	}
	found := make(map[string]*ebpf.Map)
	var reasons []string
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			reasons = append(reasons, "map "+name+" not pinned")
			continue
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("map %s: %v", name, err))
			continue
		}
		found[name] = m
		if err := spec.Maps[name].Compatible(m); err != nil {
			reasons = append(reasons, fmt.Sprintf("map %s: %v", name, err))
		}
	}
	if len(reasons) == 0 {
		if err := checkLayout(dir, ps.layout); err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	switch {
	case len(reasons) == 0:
		ps.State, ps.adopt = PinsAdopted, found
		return ps, nil
	case len(found) == 0 && !anyLinkPinned(dir):
		ps.State = PinsCreated
	default:
		ps.State, ps.Reason = PinsReplaced, strings.Join(reasons, "; ")
	}
	ps.oldTargets = found["targets"]
	delete(found, "targets")
	closeMaps(found)
	return ps, nil
}

// checkLayout compares the pinned layout fingerprint with want.
func checkLayout(dir string, want [sha256.Size]byte) error {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, layoutPin), nil)
	if err != nil {
		return fmt.Errorf("layout fingerprint: %w", err)
	}
	defer m.Close()
	var got [sha256.Size]byte
	if m.ValueSize() != uint32(len(got)) {
		return fmt.Errorf("layout fingerprint: value size %d, want %d", m.ValueSize(), len(got))
	}
	if err := m.Lookup(uint32(0), &got); err != nil {
		return fmt.Errorf("layout fingerprint: %w", err)
	}
	if got != want {
		return fmt.Errorf("layout fingerprint %x differs from this build's %x", got[:4], want[:4])
	}
	return nil
}

func anyLinkPinned(dir string) bool {
	for _, h := range hooks {
		if _, err := os.Lstat(filepath.Join(dir, linkPin(h))); err == nil {
			return true
		}
	}
	return false
}

func closeMaps(ms map[string]*ebpf.Map) {
	for _, m := range ms {
		m.Close()
	}
}

// copyTargets copies the old targets map into the new one when their
// entries have the same size (the targets layout is a stable 8+8 bytes),
// so an enforced endpoint stays fail-closed across a replacement.
func copyTargets(from, to *ebpf.Map) error {
	if from.KeySize() != to.KeySize() || from.ValueSize() != to.ValueSize() {
		return fmt.Errorf("old targets map has %d-byte keys and %d-byte values, want %d and %d: not copied",
			from.KeySize(), from.ValueSize(), to.KeySize(), to.ValueSize())
	}
	k := make([]byte, from.KeySize())
	v := make([]byte, from.ValueSize())
	it := from.Iterate()
	for it.Next(&k, &v) {
		if err := to.Update(k, v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("copy target: %w", err)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read old targets: %w", err)
	}
	return nil
}

// pinAtomic pins an object at path, replacing whatever is pinned there
// without a moment in which path is missing (pin aside, then rename).
func pinAtomic(path string, pin func(string) error) error {
	tmp := path + pinSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale pin: %w", err)
	}
	if err := pin(tmp); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// pinMaps pins the maps and, last, the layout fingerprint, over whatever
// was pinned. A crash part-way leaves an old or missing fingerprint, so the
// next start replaces again.
func (o *Objects) pinMaps(ps *pinSet) error {
	for _, name := range pinnedMaps {
		m := o.mapByName(name)
		if err := pinAtomic(filepath.Join(ps.Dir, name), m.Pin); err != nil {
			return err
		}
	}
	layout, err := ebpf.NewMap(&ebpf.MapSpec{Name: "msp_layout", Type: ebpf.Array, KeySize: 4, ValueSize: sha256.Size, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create layout map: %w", err)
	}
	defer layout.Close()
	if err := layout.Put(uint32(0), ps.layout); err != nil {
		return fmt.Errorf("write layout map: %w", err)
	}
	return pinAtomic(filepath.Join(ps.Dir, layoutPin), layout.Pin)
}

func (o *Objects) mapByName(name string) *ebpf.Map {
	switch name {
	case "targets":
		return o.objs.Targets
	case "by_cookie":
		return o.objs.ByCookie
	case "by_port":
		return o.objs.ByPort
	case "counters":
		return o.objs.Counters
	}
	return nil
}

// attachPinned puts prog on hook h of the cgroup (id cgID) through the link
// pinned in dir: a pinned link on the same cgroup and hook gets the program
// swapped in atomically (BPF_LINK_UPDATE: no moment without a program);
// otherwise a new link is attached and pinned over the old pin, and only
// then is the old link detached (both run for that moment).
func attachPinned(cg *os.File, cgID uint64, h hook, prog *ebpf.Program, dir string) (link.Link, error) {
	path := filepath.Join(dir, linkPin(h))
	old, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		old = nil // none, or not a link: the pin is replaced below
	} else if sameAttachment(old, cgID, h.attach) {
		if err := old.Update(prog); err == nil {
			return old, nil
		}
	}
	lk, err := link.AttachRawLink(link.RawLinkOptions{Target: int(cg.Fd()), Program: prog, Attach: h.attach})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return nil, err
	}
	if err := pinAtomic(path, lk.Pin); err != nil {
		lk.Close()
		if old != nil {
			old.Close()
		}
		return nil, err
	}
	if old != nil {
		detach(old)
	}
	return lk, nil
}

// sameAttachment reports whether lk is a cgroup link on cgroup cgID and
// hook at.
func sameAttachment(lk link.Link, cgID uint64, at ebpf.AttachType) bool {
	info, err := lk.Info()
	if err != nil || info.Type != link.CgroupType {
		return false
	}
	c := info.Cgroup()
	return c != nil && c.CgroupId == cgID && ebpf.AttachType(c.AttachType) == at
}

// detach detaches lk even if other processes hold it (BPF_LINK_DETACH),
// and closes it; on kernels without BPF_LINK_DETACH closing the last
// reference detaches it.
func detach(lk link.Link) error {
	err := lk.Detach()
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = nil
	}
	return errors.Join(err, lk.Close())
}

// RemovePins detaches the links pinned in dir by Attach and removes their
// pins and the maps' pins, then dir itself if nothing else is left in it
// (for uninstall). Only names this package pins are touched, so a dir
// mistakenly set to a shared bpffs directory loses nothing else. It works
// without a running agent (a running one loses its programs too) and is
// idempotent: a missing dir is not an error.
func RemovePins(dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("remove eBPF pins: %w", err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("remove eBPF pins: %s is not on a bpffs mount (filesystem type %#x): nothing of ours can be pinned there", dir, fs.Type)
	}
	var errs []error
	for _, h := range hooks {
		path := filepath.Join(dir, linkPin(h))
		for _, p := range []string{path, path + pinSuffix} {
			if lk, err := link.LoadPinnedLink(p, nil); err == nil {
				if err := detach(lk); err != nil {
					errs = append(errs, fmt.Errorf("detach pinned link %s: %w", p, err))
				}
			}
		}
	}
	names := []string{layoutPin}
	names = append(names, pinnedMaps...)
	for _, h := range hooks {
		names = append(names, linkPin(h))
	}
	for _, name := range names {
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+pinSuffix)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
			}
		}
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove eBPF pins in %s: %w", dir, err)
	}
	return nil
}

// LockPins creates dir on its bpffs mount if missing and takes an
// exclusive lock on it, waiting for another holder, so two agents, or an
// agent and a cleanup, never rework the same pins at once. Hold it from
// Load to the end of Attach; Close releases it (as does the process's exit).
func LockPins(dir string) (io.Closer, error) {
	if err := checkPinDir(dir); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
	}
	return f, nil
}
