package bpf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mspguest/msp/bpf/bpftest"
	"golang.org/x/sys/unix"
)

// TestLockPins: the pin directory is created on bpffs and locked
// exclusively until released.
func TestLockPins(t *testing.T) {
	dir := filepath.Join(bpftest.MountBPFFS(t), "a", "b")
	lock, err := LockPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second lock while held: %v; want EWOULDBLOCK", err)
	}
	lock.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

// TestRemovePinsLeavesOthers: only the names this package pins are
// removed, so a pin directory set to a shared bpffs directory keeps the
// rest (and the directory).
func TestRemovePinsLeavesOthers(t *testing.T) {
	dir := bpftest.MountBPFFS(t)
	foreign := filepath.Join(dir, "someone_else")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := RemovePins(dir); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("RemovePins removed a foreign entry: %v", err)
	}
	if err := RemovePins(t.TempDir()); err == nil {
		t.Error("RemovePins on a directory outside bpffs: want an error")
	}
}
