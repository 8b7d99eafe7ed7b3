package handler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/status"
)

// install checks the package; the agent itself is installed by enable,
// which converges on every goal state.
func (h *Handler) install(ctx context.Context) error {
	if _, err := os.Stat(h.Bundled.Binary); err != nil {
		return failf(ExitServiceInstall, "the package has no agent binary: %v", err)
	}
	h.report(status.Success, 0, "msp-handler installed; enable installs and starts msp-agent", "Install")
	return nil
}

// disable stops the monitor only: the agent keeps running, because
// stopping it would not reopen metadata access in enforce mode and would
// drop protection in audit mode (handler-contract.md §8.8). It never fails
// for a recoverable reason, since a failing disable blocks waagent's
// removal and upgrade.
func (h *Handler) disable(ctx context.Context) error {
	if err := h.Ctl.StopMonitor(ctx); err != nil {
		h.Log.WithError(err).Warn("cannot stop the monitor")
	}
	msg := "extension disabled: status reporting stopped; msp-agent keeps running and protecting the metadata endpoints (remove the extension to remove it)"
	h.report(status.Success, 0, msg, "Disable")
	if err := status.WriteHeartbeat(h.Env.HeartbeatFile, false, msg); err != nil {
		h.Log.WithError(err).Warn("cannot write the heartbeat")
	}
	return nil
}

// update runs in the new version during an upgrade, between the old
// disable and the old uninstall: it drops the marker that tells the old
// uninstall to leave the agent alone. The new enable replaces the binary.
func (h *Handler) update(ctx context.Context) error {
	stamp := []byte(h.env.Now().UTC().Format(time.RFC3339))
	if err := henv.WriteFileAtomic(h.updateTagPath(), stamp, 0o600); err != nil {
		return failf(ExitServiceUpdate, "write the upgrade marker: %v", err)
	}
	h.Log.WithField("from", h.env.Getenv("AZURE_GUEST_AGENT_UPDATING_FROM_VERSION")).
		WithField("to", h.env.Getenv("VERSION")).Info("upgrade marker written")
	h.report(status.Success, 0, "upgrade prepared: the agent keeps running until the new version's enable replaces it", "Update")
	return nil
}

// upgrading reports whether the upgrade marker is fresh.
func (h *Handler) upgrading() bool {
	info, err := os.Stat(h.updateTagPath())
	return err == nil && h.env.Now().Sub(info.ModTime()) < updateTagMaxAge
}

// uninstall removes the agent unless an upgrade is under way: stop the
// monitor and the agent, let the agent detach and unpin (--cleanup), then
// delete its binary, units, configuration and state (keys). Logs stay.
func (h *Handler) uninstall(ctx context.Context) error {
	if h.upgrading() {
		if err := h.Ctl.StopMonitor(ctx); err != nil {
			h.Log.WithError(err).Warn("cannot stop the monitor")
		}
		h.Log.Info("upgrade in progress: msp-agent stays installed")
		h.report(status.Success, 0, "old version removed; msp-agent stays for the new version", "Uninstall")
		return nil
	}
	var errs []error
	if err := h.Ctl.Remove(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop msp-agent: %w", err))
	}
	if _, err := os.Stat(h.Installed.Binary); err == nil {
		if err := h.Installed.Cleanup(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.Files.Remove(h.owner()); err != nil {
		errs = append(errs, fmt.Errorf("remove msp-agent's files: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fail(ExitUninstall, err)
	}
	h.report(status.Success, 0, "msp-agent removed", "Uninstall")
	return nil
}

// owner skips the package-ownership query in test mode, where nothing
// under MSP_ROOT can belong to a package.
func (h *Handler) owner() func(string) bool {
	if h.options.Owner != nil {
		return h.options.Owner
	}
	if h.Opts.TestMode {
		return nil
	}
	return agentsvc.PackageOwner
}

// resetstate forgets what the handler recorded (mrseq, settings hash and
// the upgrade marker), so the next enable redoes its one-shot work.
func (h *Handler) resetState(ctx context.Context) error {
	if err := henv.ClearMarker(h.Env.Root); err != nil {
		return fail(ExitSequenceNumber, err)
	}
	if err := os.Remove(h.updateTagPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(ExitSequenceNumber, err)
	}
	h.report(status.Success, 0, "handler state reset", "ResetState")
	return nil
}
