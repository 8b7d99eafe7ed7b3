package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/status"
)

// statusLoop checks the provisioning timeout every second and writes
// status.json every StatusInterval (and at once when provisioning ends).
func (d *Daemon) statusLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	next := time.Now()
	for {
		if err := d.tracker.Tick(); err != nil {
			d.log.WithError(err).Warn("writing the provisioning files")
		}
		if now := time.Now(); !now.Before(next) {
			next = now.Add(d.opts.StatusInterval)
			doc := d.document()
			path := filepath.Join(d.cfg.Load().LogDir, status.FileName)
			if err := doc.WriteFile(path); err != nil {
				d.log.WithError(err).Warn("writing the status document")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// document renders the aggregate status (agent.md §9) now.
func (d *Daemon) document() status.Document {
	st := d.state.Load()
	cfg := d.cfg.Load()
	key := status.KeyLatch{Module: status.Module{Status: status.Unknown, Message: "waiting for the first secure-channel status"}}
	if st != nil {
		key.States = status.States{
			SecureChannelState: st.SecureChannelState,
			KeyGUID:            st.KeyGUID,
			WireServerRuleID:   st.RuleID(hostproto.WireServer),
			IMDSRuleID:         st.RuleID(hostproto.IMDS),
			HostGARuleID:       st.RuleID(hostproto.HostGAPlugin),
		}
		if st.KeyIncarnationID != nil {
			key.States.KeyIncarnationID = strconv.FormatUint(uint64(*st.KeyIncarnationID), 10)
		}
		if !st.KeyLatchedAt.IsZero() {
			key.States.KeyLatchedAt = st.KeyLatchedAt.UTC().Format(time.RFC3339)
		}
		eff := authz.EffectiveModes(st.HostModes, cfg.Settings.IMDS, cfg.Settings.WireServer)
		key.States.EffectiveModes = fmt.Sprintf("imds=%s wireserver=%s hostga=%s", eff.IMDS, eff.WireServer, eff.HostGAPlugin)
		switch {
		case st.Latched && st.Disabled():
			key.Module = status.Module{Status: status.Running, Message: "the host has the secure channel disabled; no key is needed"}
		case st.Latched:
			key.Module = status.Module{Status: status.Running, Message: "key " + st.KeyGUID + " latched"}
		case st.LastError != nil:
			key.Module = status.Module{Status: status.Stopped, Message: "no key latched: " + st.LastError.Error()}
		default:
			key.Module = status.Module{Status: status.Unknown, Message: "no key latched yet"}
		}
		if st.LastError != nil && st.Latched {
			key.Message += fmt.Sprintf("; last host call failed (%d in a row): %v", st.ConsecutiveFailures, st.LastError)
		}
	}
	ebpf := d.ebpf
	if d.redir != nil {
		if rs, err := d.redir.Status(); err == nil {
			ebpf.Message = fmt.Sprintf("attached to cgroup %s; redirected %d, failed closed %d, failed open %d, other netns %d",
				describeCgroup(rs.Cgroup), rs.Counters.Redirected, rs.Counters.FailedClosed, rs.Counters.FailedOpen,
				rs.Counters.NetnsPassed+rs.Counters.NetnsDenied)
		}
	}
	pa := status.ProxyAgent{
		Version:               d.opts.Version,
		MonitorStatus:         status.Module{Status: status.Running, Message: "status written every " + d.opts.StatusInterval.String()},
		KeyLatchStatus:        key,
		EBPFProgramStatus:     ebpf,
		ProxyListenerStatus:   d.lnMod,
		TelemetryLoggerStatus: status.Module{Status: status.Stopped, Message: "telemetry to the host is not implemented (agent.md §11); see audit.jsonl and status.json"},
		ProxyConnectionsCount: d.tee.requests.Load(),
	}
	return status.New(time.Now(), pa, d.audit.Summaries())
}

// registerMetrics adds the daemon's gauges and counters to the registry.
func (d *Daemon) registerMetrics() {
	d.metrics.Collect("msp_key_age_seconds", "Seconds since the signing key was latched.", metrics.Gauge,
		metrics.Age(func() time.Time {
			if st := d.state.Load(); st != nil && st.Signer != nil {
				return st.KeyLatchedAt
			}
			return time.Time{}
		}, time.Now))
	d.metrics.Collect("msp_host_poll_failures", "Consecutive failed secure-channel polls.", metrics.Gauge, func() []metrics.Sample {
		if st := d.state.Load(); st != nil {
			return []metrics.Sample{{Value: float64(st.ConsecutiveFailures)}}
		}
		return nil
	})
	d.metrics.Collect("msp_open_connections", "Client connections the proxy holds open.", metrics.Gauge, func() []metrics.Sample {
		return []metrics.Sample{{Value: float64(d.proxy.Stats().Conns)}}
	})
	d.metrics.Collect("msp_audit_lines_lost_total", "Audit lines dropped or lost to write errors.", metrics.Counter, func() []metrics.Sample {
		s := d.audit.Stats()
		return []metrics.Sample{{Value: float64(s.Dropped + s.Lost)}}
	})
	d.metrics.Collect("msp_redirect_total", "eBPF redirector counters by event.", metrics.Counter, func() []metrics.Sample {
		if d.redir == nil {
			return nil
		}
		rs, err := d.redir.Status()
		if err != nil {
			return nil
		}
		c := rs.Counters
		ev := func(name string, v uint64) metrics.Sample {
			return metrics.Sample{Labels: []metrics.Label{{Name: "event", Value: name}}, Value: float64(v)}
		}
		return []metrics.Sample{
			ev("redirected", c.Redirected), ev("exempted", c.Exempted), ev("failed_open", c.FailedOpen),
			ev("failed_closed", c.FailedClosed), ev("netns_passed", c.NetnsPassed), ev("netns_denied", c.NetnsDenied),
			ev("record_errors", c.RecordErrors), ev("lookups_missed", c.LookupsMissed),
		}
	})
	d.metrics.Collect("msp_effective_mode", "Effective mode per endpoint: 0 disabled, 1 audit, 2 enforce.", metrics.Gauge, func() []metrics.Sample {
		st := d.state.Load()
		if st == nil {
			return nil
		}
		cfg := d.cfg.Load()
		eff := authz.EffectiveModes(st.HostModes, cfg.Settings.IMDS, cfg.Settings.WireServer)
		var out []metrics.Sample
		for _, ep := range hostproto.Endpoints {
			out = append(out, metrics.Sample{Labels: []metrics.Label{{Name: "endpoint", Value: ep.String()}}, Value: float64(eff.Of(ep))})
		}
		return out
	})
}
