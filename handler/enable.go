package handler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/settings"
	"github.com/mspguest/msp/handler/status"
)

// updateTag is GPA's upgrade marker in <LIB>: written by the new version's
// update, honoured by the old version's uninstall, deleted by enable.
const updateTag = "msp-update.tag"

// updateTagMaxAge: waagent runs the old uninstall right after the new
// update; an older marker is a failed upgrade's leftover and must not
// stop a real uninstall forever.
const updateTagMaxAge = 2 * time.Hour

func (h *Handler) updateTagPath() string { return filepath.Join(h.Env.LibDir(), updateTag) }

// enable converges the machine on the settings of h.Seq: the agent's
// binary, unit and configuration installed, the agent running and ready,
// the monitor running; one-shot work only once per (sequence, settings).
func (h *Handler) enable(ctx context.Context) error {
	s, err := h.readSettings()
	if err != nil {
		return err
	}
	marker := henv.ReadMarker(h.Env.Root)
	oneShot := !marker.Done(h.Seq, s.Hash)
	h.Log.WithField("newSettings", oneShot).WithField("protectedSettings", s.HasProtected).Info("settings are valid")

	change, err := h.installAgent(s)
	if err != nil {
		return err
	}
	if err := h.Ctl.Apply(ctx, change); err != nil {
		return h.rollBack(ctx, change, fail(ExitServiceStart, fmt.Errorf("start msp-agent with %s: %w", h.Ctl.Name(), err)))
	}
	if err := h.Installed.WaitReady(ctx, h.readyWait(ctx)); err != nil {
		return h.rollBack(ctx, change, fail(ExitServiceStart, readinessError(err)))
	}
	if change.Binary {
		if err := h.Files.Purge(); err != nil {
			h.Log.WithError(err).Warn("cannot remove the backup of the previous agent")
		}
	}
	if err := os.Remove(h.updateTagPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.Log.WithError(err).Warn("cannot remove the upgrade marker")
	}
	if oneShot {
		h.blankOldSettings()
		if err := henv.WriteMarker(h.Env.Root, h.Seq, s.Hash); err != nil {
			return fail(ExitSequenceNumber, fmt.Errorf("record sequence number %d: %w", h.Seq, err))
		}
		_ = h.Events.Emit("Enable", status.LevelInformational, fmt.Sprintf("settings of sequence number %d applied", h.Seq))
	}
	if err := h.Ctl.StartMonitor(ctx); err != nil {
		// The agent runs; only reporting suffers. Say so, do not fail.
		h.Log.WithError(err).Error("cannot start the monitor")
	}
	msg, subs := h.agentReport()
	h.report(status.Success, 0, msg, "Enable", subs...)
	if err := status.WriteHeartbeat(h.Env.HeartbeatFile, true, msg); err != nil {
		h.Log.WithError(err).Warn("cannot write the heartbeat")
	}
	return nil
}

// readyWait is 120 s (the agent's own provisioning timeout, agent.md
// §3.1), less when the command's budget has less left.
func (h *Handler) readyWait(ctx context.Context) time.Duration {
	wait := 120 * time.Second
	if h.options.ReadyWait > 0 {
		wait = h.options.ReadyWait
	}
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)-20*time.Second)
	}
	return max(wait, time.Second)
}

func readinessError(err error) error {
	var nr *agentsvc.NotReadyError
	if errors.As(err, &nr) {
		return fmt.Errorf("msp-agent did not become ready: %s; check /var/log/msp-agent/ProxyAgent.log and `msp-agent --status`", nr.Message)
	}
	return fmt.Errorf("msp-agent failed to start: %w", err)
}

// readSettings reads and validates the settings of h.Seq; a problem is an
// exit-11 error naming the JSON path, and nothing is changed on the machine.
func (h *Handler) readSettings() (settings.Settings, error) {
	dec := settings.OpenSSL{CertDir: h.Env.LibDir(), Fallback: settings.FoundationSmime{Seq: h.Seq, HandlerRoot: h.Env.Root}}
	s, err := settings.Read(h.Env.ConfigFolder, h.Seq, dec)
	var ie *settings.InvalidError
	switch {
	case errors.As(err, &ie):
		return s, fail(ExitInvalidSettings, fmt.Errorf("%w; the agent keeps its last good configuration", err))
	case errors.Is(err, os.ErrNotExist):
		return s, failf(ExitInvalidSettings, "no settings file %s for sequence number %d", settings.FileName(h.Env.ConfigFolder, h.Seq), h.Seq)
	case err != nil:
		return s, fail(ExitInvalidSettings, err)
	}
	return s, nil
}

// installAgent installs the bundled binary (backing up the old one) and
// writes the configuration, each only when it changed.
func (h *Handler) installAgent(s settings.Settings) (agentsvc.Change, error) {
	var c agentsvc.Change
	l := h.Opts.Layout
	src := h.Bundled.Binary
	if _, err := os.Stat(src); err != nil {
		return c, failf(ExitServiceInstall, "the package has no agent binary: %v", err)
	}
	if owned := h.owner(); owned != nil && owned(l.Binary()) {
		// A package-installed agent (msp-agent .deb) keeps its binary and
		// unit; the extension only configures it (handler-contract.md §8.8).
		c.PackageOwned = true
		h.Log.WithField("binary", l.Binary()).Info("package-installed agent: keeping its binary and unit, writing the configuration only")
	}
	same, err := sameContent(src, l.Binary())
	if err != nil {
		return c, fail(ExitServiceInstall, err)
	}
	if !same && !c.PackageOwned {
		if err := h.Files.Backup(); err != nil {
			return c, failf(ExitServiceInstall, "back up the installed agent: %v", err)
		}
		if c.Binary, err = agentsvc.InstallFile(src, l.Binary(), 0o755); err != nil {
			return c, fail(ExitServiceInstall, err)
		}
	}
	cfg, err := agentsvc.NewConfig(h.Opts, s.Public.LogLevel, s.Public.NetnsPolicy, s.Public.IMDS, s.Public.WireServer).Marshal()
	if err != nil {
		return c, fail(ExitServiceInstall, err)
	}
	if c.Config, err = agentsvc.WriteIfChanged(l.ConfigFile(), cfg, 0o600); err != nil {
		return c, fail(ExitServiceInstall, err)
	}
	h.Log.WithField("binaryChanged", c.Binary).WithField("configChanged", c.Config).Info("agent files in place")
	return c, nil
}

func sameContent(a, b string) (bool, error) {
	x, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	y, err := os.ReadFile(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return string(x) == string(y), nil
}

// rollBack restores the previous agent binary when this enable replaced
// it and the new one failed (GPA's backup → restore cycle), and returns
// cause with what happened added.
func (h *Handler) rollBack(ctx context.Context, c agentsvc.Change, cause error) error {
	if !c.Binary {
		return cause
	}
	restored, err := h.Files.Restore()
	if err != nil || !restored {
		return cause
	}
	h.Log.Warn("new agent failed; previous agent restored")
	if err := h.Ctl.Apply(ctx, agentsvc.Change{Binary: true}); err != nil {
		return fmt.Errorf("%w; restoring the previous agent failed too: %v", cause, err)
	}
	if err := h.Installed.WaitReady(ctx, h.readyWait(ctx)/2); err != nil {
		return fmt.Errorf("%w; the restored previous agent is not ready either: %v", cause, err)
	}
	_ = h.Files.Purge()
	var ce *codedError
	if errors.As(cause, &ce) {
		return &codedError{code: ce.code, err: fmt.Errorf("%w; the previous agent was restored and runs", ce.err)}
	}
	return cause
}

// blankOldSettings truncates the settings files of other sequence numbers
// that carry protected settings, as CSE does: no ciphertext left behind.
func (h *Handler) blankOldSettings() {
	entries, err := os.ReadDir(h.Env.ConfigFolder)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		n, ok := strings.CutSuffix(name, ".settings")
		if !ok || n == strconv.Itoa(h.Seq) {
			continue
		}
		p := filepath.Join(h.Env.ConfigFolder, name)
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), `"protectedSettings"`) {
			_ = os.Truncate(p, 0)
		}
	}
}

// agentReport reads the agent's aggregate status for the status file.
func (h *Handler) agentReport() (string, []status.Substatus) {
	version, _ := h.Installed.Version(context.Background())
	msg := fmt.Sprintf("msp-agent %s is running with the settings of sequence number %d", version, h.Seq)
	f, err := os.Open(h.Opts.Layout.AggregateStatus())
	if err != nil {
		return msg, status.ErrorSubstatuses(fmt.Errorf("the agent has not written its status yet: %v", err))
	}
	defer f.Close()
	a, err := status.ReadAggregate(f)
	if err != nil {
		return msg, status.ErrorSubstatuses(err)
	}
	return msg, a.Substatuses()
}
