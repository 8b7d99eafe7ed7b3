// Command msp-agent is the MSP signing proxy agent (issue 9): run in the
// foreground until SIGTERM or SIGINT, as systemd and the extension's
// supervisor run it.
//
//	msp-agent [--config PATH]            run the agent
//	msp-agent --status [--wait N]        cloud-init's provisioning query (exit 0/1/2)
//	msp-agent --cleanup                  detach and unpin everything this configuration's agent owns
//	msp-agent --prepare                  create its directories and mount bpffs (ExecStartPre)
//	msp-agent --version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/config"
	"github.com/mspguest/msp/agent/daemon"
	"github.com/mspguest/msp/agent/provision"
	"github.com/mspguest/msp/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes of the daemon form (the --status form has its own, agent.md §3.4).
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitRestart = 75 // EX_TEMPFAIL: the configuration changed; run again
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msp-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration `FILE` (a missing default file means defaults)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	statusQuery := fs.Bool("status", false, "query provisioning: exit 0 finished, 1 not finished or unreachable, 2 finished with an error")
	wait := fs.Int("wait", 0, "with --status: retry for up to `N` seconds")
	cleanup := fs.Bool("cleanup", false, "detach and unpin everything this configuration's agent owns (uninstall)")
	prepare := fs.Bool("prepare", false, "create the agent's directories and mount bpffs if absent, then exit")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "msp-agent: unexpected argument %q (see --help)\n", fs.Arg(0))
		return exitUsage
	}
	if *wait < 0 || (*wait > 0 && !*statusQuery) {
		fmt.Fprintln(stderr, "msp-agent: --wait N takes a non-negative number of seconds and goes with --status")
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return exitOK
	}
	path := *cfgPath
	if path == config.DefaultPath {
		path = "" // a missing default file means defaults
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "msp-agent: %v\n", err)
		if *statusQuery {
			return provision.ExitNotFinished
		}
		return exitError
	}
	switch {
	case *statusQuery:
		res := provision.Wait(context.Background(), cfg.Listen.String(), time.Duration(*wait)*time.Second)
		fmt.Fprintln(stdout, res.Message)
		return res.Code
	case *cleanup:
		if err := daemon.Cleanup(cfg); err != nil {
			fmt.Fprintf(stderr, "msp-agent --cleanup: %v\n", err)
			return exitError
		}
		return exitOK
	case *prepare:
		if err := daemon.Prepare(cfg); err != nil {
			fmt.Fprintf(stderr, "msp-agent --prepare: %v\n", err)
			return exitError
		}
		return exitOK
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	err = daemon.Run(ctx, daemon.Options{ConfigPath: path, Version: version.Version, LogOutput: stderr, Reload: reload})
	switch {
	case errors.Is(err, daemon.ErrRestart):
		return exitRestart
	case err != nil:
		fmt.Fprintf(stderr, "msp-agent: %v\n", err)
		return exitError
	}
	return exitOK
}
