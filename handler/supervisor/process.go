package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spawn starts exe with args as a detached process (its own session, so it
// outlives the caller and waagent's process-group kill), with stdout and
// stderr appended to logPath, and records its pid in pidPath.
func Spawn(exe string, args, env []string, logPath, pidPath string) (int, error) {
	for _, d := range []string{filepath.Dir(logPath), filepath.Dir(pidPath)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	pid := cmd.Process.Pid
	// Reap it if this process outlives it (tests); otherwise init does.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(pid)), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return 0, err
	}
	return pid, nil
}

// Find returns the pid recorded in pidPath when that process is alive and
// its command line contains marker (so a reused pid is not taken for it).
func Find(pidPath, marker string) (int, bool) {
	data, err := os.ReadFile(pidPath)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid, marker)
}

func alive(pid int, marker string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name; Z is a zombie.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(cmdline, []byte(marker))
}

// Signal sends sig to the process of pidPath if it is alive.
func Signal(pidPath, marker string, sig syscall.Signal) error {
	pid, ok := Find(pidPath, marker)
	if !ok {
		return ErrNotRunning
	}
	return syscall.Kill(pid, sig)
}

// ErrNotRunning: the pidfile names no live process.
var ErrNotRunning = errors.New("not running")

// Stop sends SIGTERM to the process of pidPath, waits up to timeout for it
// to exit, then SIGKILLs it; the pidfile is removed. Not running is not an
// error.
func Stop(pidPath, marker string, timeout time.Duration) error {
	pid, ok := Find(pidPath, marker)
	if !ok {
		os.Remove(pidPath)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for alive(pid, marker) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 50 && alive(pid, marker); i++ {
				time.Sleep(20 * time.Millisecond)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.Remove(pidPath)
	if alive(pid, marker) {
		return fmt.Errorf("pid %d did not exit", pid)
	}
	return nil
}
