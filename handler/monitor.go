package handler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/status"
)

// Monitor periods and limits (handler-contract.md §8.3, §8.4).
const (
	defaultMonitorInterval = 15 * time.Second
	heartbeatInterval      = 5 * time.Minute
	aggregateMaxAge        = 5 * time.Minute
)

// Monitor keeps the status file of the last enabled sequence number and
// the heartbeat fresh from the agent's aggregate status.
type Monitor struct {
	Env       henv.Env
	Layout    agentsvc.Layout
	Bundled   agentsvc.Agent // its version must be the running agent's
	Log       logrus.FieldLogger
	Now       func() time.Time
	Interval  time.Duration
	tracker   status.Tracker
	version   string
	heartbeat time.Time
}

// Run monitors until ctx ends or the handler root disappears (the version
// was uninstalled).
func (m *Monitor) Run(ctx context.Context) error {
	interval := m.Interval
	if interval == 0 {
		interval = defaultMonitorInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := os.Stat(m.Env.Root); err != nil {
			m.Log.Info("handler root is gone; monitor exits")
			return nil
		}
		m.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round is one monitor iteration: read, judge, write status (and the
// heartbeat when due).
func (m *Monitor) Round(ctx context.Context) {
	now := m.Now()
	seq := henv.ReadMarker(m.Env.Root).Seq
	if seq < 0 {
		return // nothing enabled yet: enable writes the first status
	}
	if m.version == "" {
		if v, err := m.Bundled.Version(ctx); err == nil {
			m.version = v
		} else {
			m.Log.WithError(err).Warn("cannot read the bundled agent's version")
		}
	}
	var subs []status.Substatus
	err := m.check(now, &subs)
	state := m.tracker.Observe(err == nil)
	msg, code := "msp-agent "+m.version+" is running", 0
	if err != nil {
		msg = err.Error()
		if state == status.Error {
			code = 4
		}
		subs = status.ErrorSubstatuses(err)
		m.Log.WithError(err).WithField("state", state).Warn("agent not healthy")
	}
	r := status.Report{Name: m.Env.Name, Operation: "Enable", State: state, Code: code, Message: msg, Substatus: subs}
	if werr := status.Write(m.Env.StatusFolder, seq, r, now); werr != nil {
		m.Log.WithError(werr).Error("cannot write the status file")
	}
	if now.Sub(m.heartbeat) >= heartbeatInterval || m.heartbeat.IsZero() {
		if werr := status.WriteHeartbeat(m.Env.HeartbeatFile, err == nil, msg); werr == nil {
			m.heartbeat = now
		}
	}
}

func (m *Monitor) check(now time.Time, subs *[]status.Substatus) error {
	f, err := os.Open(m.Layout.AggregateStatus())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("msp-agent has written no status (%s): is it running?", m.Layout.AggregateStatus())
		}
		return err
	}
	defer f.Close()
	a, err := status.ReadAggregate(f)
	if err != nil {
		return err
	}
	if err := a.Check(now, aggregateMaxAge, m.version); err != nil {
		return err
	}
	*subs = a.Substatuses()
	return nil
}

func runMonitor(env Environment, opts Options) int {
	root, err := henv.FindRoot(env.Getenv, env.Executable())
	if err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler monitor:", err)
		return ExitHandlerEnv
	}
	he, err := henv.Load(root)
	if err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler monitor:", err)
		return ExitHandlerEnv
	}
	o, err := agentsvc.OptionsFromEnv(env.Getenv)
	if err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler monitor:", err)
		return ExitHandlerEnv
	}
	log, closeLog := newLogger(he.LogFolder, "monitor.log")
	defer closeLog()
	if o.MonitorSeconds > 0 {
		opts.MonitorInterval = time.Duration(o.MonitorSeconds) * time.Second
	}
	m := &Monitor{
		Env: he, Layout: o.Layout, Bundled: agentsvc.Agent{Binary: BundledAgent(root, env.Executable())},
		Log: log.WithField("component", "monitor"), Now: env.Now, Interval: opts.MonitorInterval,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	m.Log.Info("monitor starts")
	if err := m.Run(ctx); err != nil {
		m.Log.WithError(err).Error("monitor failed")
		return 1
	}
	return 0
}
