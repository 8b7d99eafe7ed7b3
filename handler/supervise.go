package handler

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/supervisor"
)

// runSupervise is the detached supervisor of supervisor mode: it runs
// `msp-agent --config <config>` until SIGTERM; SIGUSR1 restarts the agent
// (a new binary), SIGHUP is passed on (a new configuration). It needs no
// handler environment, so it outlives upgrades of the handler.
func runSupervise(env Environment, opts Options) int {
	o, err := agentsvc.OptionsFromEnv(env.Getenv)
	if err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler supervise:", err)
		return ExitHandlerEnv
	}
	l := o.Layout
	if err := os.MkdirAll(l.RunDir(), 0o700); err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler supervise:", err)
		return ExitServiceStart
	}
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(opts.Stderr)
	s := supervisor.New(supervisor.Supervisor{
		Command: []string{l.Binary(), "--config", l.ConfigFile()},
		PidFile: l.AgentPidFile(),
		Log:     log.WithField("component", "supervisor"),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGUSR1:
				s.Restart()
			case syscall.SIGHUP:
				s.Signal(syscall.SIGHUP)
			default:
				cancel()
				return
			}
		}
	}()
	if err := s.Run(ctx); err != nil {
		log.WithError(err).Error("supervisor failed")
		return ExitServiceStart
	}
	return 0
}
