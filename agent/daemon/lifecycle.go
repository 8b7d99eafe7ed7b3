package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/config"
	"github.com/mspguest/msp/agent/redirect"
)

// bpffsMagic is BPF_FS_MAGIC, statfs(2)'s f_type of a bpffs mount.
const bpffsMagic = 0xcafe4a11

// Prepare creates the agent's directories and makes sure the parent of
// BPFFSDir is a bpffs mount (mounting one if not) with BPFFSDir inside
// it. systemd runs it as the unit's privileged ExecStartPre: a bpffs
// mounted inside the unit's own mount namespace would vanish with it.
func Prepare(cfg *config.Config) error {
	if err := prepareDirs(cfg); err != nil {
		return err
	}
	return MountBPFFS(cfg.BPFFSDir)
}

// MountBPFFS mounts bpffs on filepath.Dir(dir) unless dir's parent already
// is one, then creates dir (0700).
func MountBPFFS(dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("bpffs: %w", err)
	}
	isBPF, err := onBPFFS(parent)
	if err != nil {
		return err
	}
	if !isBPF {
		if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("bpffs: mount -t bpf bpf %s: %w (needs CAP_SYS_ADMIN)", parent, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpffs: %w", err)
	}
	return nil
}

func onBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("bpffs: statfs %s: %w", path, err)
	}
	return uint32(st.Type) == bpffsMagic, nil
}

// Cleanup removes what an agent with this configuration leaves in the
// kernel (uninstall): it detaches and unpins the links and maps pinned
// under BPFFSDir and removes stale legacy attachments of its programs on
// its cgroup. It needs no running agent and is idempotent; stop the agent
// first, or it keeps running without interception.
func Cleanup(cfg *config.Config) error {
	return redirect.Cleanup(cfg.Cgroup, cfg.BPFFSDir)
}
