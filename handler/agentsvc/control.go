package agentsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/unitfile"
	"github.com/mspguest/msp/handler/supervisor"
)

// Change says what an install changed, so the controller restarts only
// when it must: a new binary or unit needs a restart, a new configuration
// only a reload (the agent applies it live).
type Change struct {
	Binary, Config bool
	// PackageOwned: a distribution package (the .deb) installed the agent;
	// its binary and unit are kept and only the configuration is written
	// (handler-contract.md §8.8).
	PackageOwned bool
}

// Controller runs the agent and the handler's monitor.
type Controller interface {
	// Apply makes the agent run (enabled at boot), restarting it when the
	// binary changed and reloading it when only the configuration did.
	Apply(ctx context.Context, c Change) error
	// Stop stops the agent.
	Stop(ctx context.Context) error
	// StartMonitor (re)starts the monitor; StopMonitor stops it.
	StartMonitor(ctx context.Context) error
	StopMonitor(ctx context.Context) error
	// Remove stops everything and removes the units and pidfiles.
	Remove(ctx context.Context) error
	// Name says which controller this is, for logs and messages.
	Name() string
}

// SystemdIsPID1 reports whether systemd manages this machine.
func SystemdIsPID1() bool {
	info, err := os.Stat("/run/systemd/system")
	return err == nil && info.IsDir()
}

// Systemd controls the agent through systemctl (found on PATH).
type Systemd struct {
	Layout Layout
	// HandlerRoot is the handler's root: its bin/msp-handler runs the
	// monitor, and systemd/msp-agent.service there, when present,
	// replaces the hardened unit built in (agent/unitfile).
	HandlerRoot string
	Timeout     time.Duration // per systemctl call; zero means 60 s
}

// Name implements Controller.
func (s Systemd) Name() string { return "systemd" }

func (s Systemd) systemctl(ctx context.Context, args ...string) error {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (s Systemd) agentUnit() []byte {
	if data, err := os.ReadFile(filepath.Join(s.HandlerRoot, "systemd", AgentUnit)); err == nil {
		return data
	}
	return unitfile.Service
}

func (s Systemd) monitorUnit() []byte {
	return []byte(fmt.Sprintf(`[Unit]
Description=MSP extension monitor: status and heartbeat for the Azure guest agent
After=%s

[Service]
Type=simple
Environment=AZURE_GUEST_AGENT_EXTENSION_PATH=%s
ExecStart=%s monitor
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`, AgentUnit, s.HandlerRoot, filepath.Join(s.HandlerRoot, "bin", "msp-handler")))
}

func (s Systemd) installUnit(name string, data []byte) (bool, error) {
	return WriteIfChanged(filepath.Join(s.Layout.UnitDir(), name), data, 0o644)
}

// Apply implements Controller.
func (s Systemd) Apply(ctx context.Context, c Change) error {
	unitChanged := false
	if !c.PackageOwned { // the package's own unit stays in charge
		var err error
		if unitChanged, err = s.installUnit(AgentUnit, s.agentUnit()); err != nil {
			return err
		}
	}
	if unitChanged {
		if err := s.systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if err := s.systemctl(ctx, "unmask", AgentUnit); err != nil {
		return err
	}
	if err := s.systemctl(ctx, "enable", AgentUnit); err != nil {
		return err
	}
	switch {
	case c.Binary || unitChanged:
		return s.systemctl(ctx, "restart", AgentUnit)
	case c.Config:
		// start is a no-op when running; the signal makes a running agent
		// re-read its configuration at once (it also watches the file).
		if err := s.systemctl(ctx, "start", AgentUnit); err != nil {
			return err
		}
		return s.systemctl(ctx, "kill", "--signal=SIGHUP", "--kill-whom=main", AgentUnit)
	}
	return s.systemctl(ctx, "start", AgentUnit)
}

// Stop implements Controller.
func (s Systemd) Stop(ctx context.Context) error { return s.systemctl(ctx, "stop", AgentUnit) }

// StartMonitor implements Controller.
func (s Systemd) StartMonitor(ctx context.Context) error {
	changed, err := s.installUnit(MonitorUnit, s.monitorUnit())
	if err != nil {
		return err
	}
	if changed {
		if err := s.systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if err := s.systemctl(ctx, "enable", MonitorUnit); err != nil {
		return err
	}
	return s.systemctl(ctx, "restart", MonitorUnit)
}

// StopMonitor implements Controller.
func (s Systemd) StopMonitor(ctx context.Context) error {
	return s.systemctl(ctx, "stop", MonitorUnit)
}

// Remove implements Controller: disable and stop both units, delete them.
func (s Systemd) Remove(ctx context.Context) error {
	var errs []error
	for _, u := range []string{MonitorUnit, AgentUnit} {
		if err := s.systemctl(ctx, "disable", "--now", u); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range []string{MonitorUnit, AgentUnit} {
		if err := os.Remove(filepath.Join(s.Layout.UnitDir(), u)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := s.systemctl(ctx, "daemon-reload"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Supervised runs the agent under the built-in supervisor, a detached
// `msp-handler supervise` process, and the monitor as a detached
// `msp-handler monitor` process, both with pidfiles in Layout.RunDir.
type Supervised struct {
	Layout     Layout
	HandlerExe string   // the msp-handler binary
	Env        []string // passed to both (test mode variables, handler root)
	LogFolder  string   // their stdout and stderr go to files here
}

// Verbs and markers of the detached processes.
const (
	SuperviseVerb = "supervise"
	MonitorVerb   = "monitor"
)

// Name implements Controller.
func (s Supervised) Name() string { return "supervisor" }

func (s Supervised) supervisorPid() string { return filepath.Join(s.Layout.RunDir(), "supervisor.pid") }
func (s Supervised) monitorPid() string    { return filepath.Join(s.Layout.RunDir(), "monitor.pid") }

// AgentPidFile is where the supervisor keeps the agent's pid.
func (l Layout) AgentPidFile() string { return filepath.Join(l.RunDir(), "agent.pid") }

// Apply implements Controller.
func (s Supervised) Apply(ctx context.Context, c Change) error {
	if _, ok := supervisor.Find(s.supervisorPid(), SuperviseVerb); ok {
		switch {
		case c.Binary:
			return s.restartAgent(ctx)
		case c.Config:
			return supervisor.Signal(s.supervisorPid(), SuperviseVerb, syscall.SIGHUP)
		}
		return nil
	}
	_, err := supervisor.Spawn(s.HandlerExe, []string{SuperviseVerb}, s.Env,
		filepath.Join(s.LogFolder, "supervisor.log"), s.supervisorPid())
	return err
}

// restartAgent asks the supervisor for a restart and waits until a new
// agent process runs, so the readiness check that follows cannot be
// answered by the old one.
func (s Supervised) restartAgent(ctx context.Context) error {
	pidFile := s.Layout.AgentPidFile()
	old, _ := supervisor.Find(pidFile, s.Layout.Binary())
	if err := supervisor.Signal(s.supervisorPid(), SuperviseVerb, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("ask the supervisor to restart msp-agent: %w", err)
	}
	deadline := time.Now().Add(restartTimeout)
	for {
		if pid, ok := supervisor.Find(pidFile, s.Layout.Binary()); ok && pid != old {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the supervisor did not restart msp-agent within %s (see supervisor.log in the extension's log folder)", restartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restartTimeout covers the old agent's SIGTERM grace (10 s) and a start.
const restartTimeout = 30 * time.Second

// Stop implements Controller.
func (s Supervised) Stop(ctx context.Context) error {
	return supervisor.Stop(s.supervisorPid(), SuperviseVerb, 30*time.Second)
}

// StartMonitor implements Controller.
func (s Supervised) StartMonitor(ctx context.Context) error {
	if err := s.StopMonitor(ctx); err != nil {
		return err
	}
	_, err := supervisor.Spawn(s.HandlerExe, []string{MonitorVerb}, s.Env,
		filepath.Join(s.LogFolder, "monitor.log"), s.monitorPid())
	return err
}

// StopMonitor implements Controller.
func (s Supervised) StopMonitor(ctx context.Context) error {
	return supervisor.Stop(s.monitorPid(), MonitorVerb, 10*time.Second)
}

// Remove implements Controller.
func (s Supervised) Remove(ctx context.Context) error {
	return errors.Join(s.StopMonitor(ctx), s.Stop(ctx))
}

// Agent runs the agent binary's own commands.
type Agent struct {
	Binary, Config string
}

// NotReadyError: the agent did not report ready in time (exit 1).
type NotReadyError struct{ Message string }

func (e *NotReadyError) Error() string {
	return "msp-agent is not ready: " + e.Message
}

// WaitReady runs `msp-agent --config C --status --wait N`: nil when the
// agent finished provisioning, *NotReadyError when it did not within wait,
// another error with the agent's own message when it finished with one.
func (a Agent) WaitReady(ctx context.Context, wait time.Duration) error {
	secs := max(int(wait/time.Second), 1)
	out, code, err := a.run(ctx, wait+15*time.Second, "--status", "--wait", strconv.Itoa(secs))
	switch {
	case err != nil:
		return err
	case code == 0:
		return nil
	case code == 1:
		return &NotReadyError{Message: out}
	}
	return fmt.Errorf("msp-agent reports an error: %s", out)
}

// Version returns the first version-looking word `msp-agent --version`
// prints ("msp-agent 1.2.3" ⇒ "1.2.3").
func (a Agent) Version(ctx context.Context) (string, error) {
	out, code, err := a.run(ctx, 15*time.Second, "--version")
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("msp-agent --version: exit %d: %s", code, out)
	}
	for _, w := range strings.Fields(out) {
		if w != "" && w[0] >= '0' && w[0] <= '9' {
			return w, nil
		}
	}
	return strings.TrimSpace(out), nil
}

// Cleanup runs `msp-agent --cleanup`: detach and unpin what the agent of
// this configuration owns.
func (a Agent) Cleanup(ctx context.Context) error {
	out, code, err := a.run(ctx, time.Minute, "--cleanup")
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("msp-agent --cleanup: exit %d: %s", code, out)
	}
	return nil
}

func (a Agent) run(ctx context.Context, timeout time.Duration, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if a.Config != "" {
		args = append([]string{"--config", a.Config}, args...)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, a.Binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	msg := strings.TrimSpace(out.String())
	if len(msg) > 2048 {
		msg = msg[:2048]
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return msg, ee.ExitCode(), nil
	}
	if err != nil {
		return msg, -1, fmt.Errorf("%s %s: %w", filepath.Base(a.Binary), strings.Join(args, " "), err)
	}
	return msg, 0, nil
}
