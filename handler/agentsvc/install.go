package agentsvc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mspguest/msp/handler/henv"
)

// Installer puts the agent's files in place, each atomically (a reader or
// a restarting agent sees the old or the new file, never a partial one),
// and only when the content differs.
type Installer struct {
	Layout Layout
}

// InstallFile copies src to dst with perm when they differ, and reports
// whether it did.
func InstallFile(src, dst string, perm os.FileMode) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	return WriteIfChanged(dst, data, perm)
}

// WriteIfChanged writes data to path atomically unless it already holds
// exactly that with perm, and reports whether it wrote.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if info, err := os.Stat(path); err == nil && info.Mode().Perm() == perm {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	if err := henv.WriteFileAtomic(path, data, perm); err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	return true, nil
}

// Backup copies the installed agent binary to the backup directory
// (before an upgrade replaces it). No installed binary is not an error.
func (i Installer) Backup() error {
	src := i.Layout.Binary()
	if !fileExists(src) {
		return nil
	}
	if err := os.MkdirAll(i.Layout.BackupDir(), 0o700); err != nil {
		return err
	}
	_, err := InstallFile(src, filepath.Join(i.Layout.BackupDir(), "msp-agent"), 0o755)
	return err
}

// Restore puts the backup binary back; it reports false when there is none.
func (i Installer) Restore() (bool, error) {
	backup := filepath.Join(i.Layout.BackupDir(), "msp-agent")
	if !fileExists(backup) {
		return false, nil
	}
	_, err := InstallFile(backup, i.Layout.Binary(), 0o755)
	return err == nil, err
}

// Purge drops the backup.
func (i Installer) Purge() error { return os.RemoveAll(i.Layout.BackupDir()) }

// Owner reports whether a distribution package owns path, so uninstall
// leaves it alone (handler-contract.md §8.8).
type Owner func(path string) bool

// PackageOwner asks dpkg or rpm, whichever exists.
func PackageOwner(path string) bool {
	for _, q := range [][]string{{"dpkg-query", "-S", path}, {"rpm", "-qf", path}} {
		bin, err := exec.LookPath(q[0])
		if err != nil {
			continue
		}
		cmd := exec.Command(bin, q[1:]...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		return cmd.Run() == nil
	}
	return false
}

// Remove deletes what the handler installed: binary, configuration, units
// and the state directory (keys, rules, backup); logs stay. Files owned by
// a distribution package are left alone.
func (i Installer) Remove(owned Owner) error {
	var errs []error
	paths := []string{
		i.Layout.Binary(), i.Layout.ConfigFile(),
		filepath.Join(i.Layout.UnitDir(), AgentUnit), filepath.Join(i.Layout.UnitDir(), MonitorUnit),
	}
	for _, p := range paths {
		if owned != nil && owned(p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(filepath.Dir(i.Layout.ConfigFile())) // only if empty
	for _, d := range []string{i.Layout.StateDir(), i.Layout.RunDir()} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
