package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/osgate"
	"github.com/mspguest/msp/handler/status"
)

// Exit codes: GPA's list (handler-contract.md §8.6) plus 11.
const (
	ExitOK              = 0
	ExitHandlerEnv      = 1  // HandlerEnvironment.json missing or invalid, bad test-mode variables
	ExitServiceUpdate   = 2  // update (upgrade marker) failed
	ExitServiceInstall  = 3  // the agent's files could not be installed
	ExitUninstall       = 5  // uninstall could not remove the agent
	ExitUnsupportedOS   = 6  // distribution or kernel not supported
	ExitServiceStart    = 7  // the agent did not start or did not become ready
	ExitServiceStop     = 8  // the agent could not be stopped
	ExitSequenceNumber  = 10 // the sequence number marker could not be written
	ExitInvalidSettings = 11 // the settings are invalid or cannot be decrypted
	ExitUsage           = 2  // unknown verb (printed usage)
)

// Environment is what the handler reads from the machine, so tests can
// inject a fake one.
type Environment interface {
	Getenv(key string) string
	// Executable is the running msp-handler binary.
	Executable() string
	// ProbeKernel checks the kernel's eBPF features (osgate.ProbeKernel).
	ProbeKernel() error
	// SystemdIsPID1 chooses the systemd controller over the supervisor.
	SystemdIsPID1() bool
	Now() time.Time
}

// Options tune Run for tests; the zero value is production.
type Options struct {
	Stdout, Stderr io.Writer
	// Controller replaces the systemd/supervisor choice.
	Controller agentsvc.Controller
	// ReadyWait bounds the wait for the agent's readiness; zero means
	// 120 s, which keeps enable well inside waagent's 300 s.
	ReadyWait time.Duration
	// MonitorInterval is the monitor's period; zero means 15 s.
	MonitorInterval time.Duration
	// Owner reports whether a distribution package owns a path; nil means
	// dpkg or rpm, except in test mode, where nothing is package-owned.
	Owner agentsvc.Owner
}

// codedError is a failure with its exit code and status operation.
type codedError struct {
	code      int
	operation string // overrides the verb's operation in the status (CheckOSVersionSupport)
	err       error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func fail(code int, err error) error { return &codedError{code: code, err: err} }

func failf(code int, format string, args ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, args...)}
}

// operation is one entry of the table.
type operation struct {
	name         string // status operation
	run          func(h *Handler, ctx context.Context) error
	gateOS       bool // refuse unsupported machines first
	transitional bool // write transitioning before running
	failCode     int  // for errors without a code of their own
	// budget bounds the whole command, below waagent's timeout (§5.4) so
	// the handler reports its own error instead of being killed.
	budget time.Duration
}

var operations = map[string]operation{
	"install":    {name: "Install", run: (*Handler).install, gateOS: true, failCode: ExitServiceInstall, budget: 600 * time.Second},
	"enable":     {name: "Enable", run: (*Handler).enable, gateOS: true, transitional: true, failCode: ExitServiceStart, budget: 240 * time.Second},
	"disable":    {name: "Disable", run: (*Handler).disable, failCode: ExitServiceStop, budget: 600 * time.Second},
	"update":     {name: "Update", run: (*Handler).update, gateOS: true, failCode: ExitServiceUpdate, budget: 600 * time.Second},
	"uninstall":  {name: "Uninstall", run: (*Handler).uninstall, failCode: ExitUninstall, budget: 240 * time.Second},
	"resetstate": {name: "ResetState", run: (*Handler).resetState, failCode: ExitSequenceNumber, budget: 240 * time.Second},
}

const usage = `usage: msp-handler install|enable|disable|update|uninstall|resetstate
       msp-handler monitor|supervise   (started by enable)
`

// Handler is one command's state.
type Handler struct {
	Env       henv.Env
	Seq       int
	Opts      agentsvc.Options
	Ctl       agentsvc.Controller
	Installed agentsvc.Agent // the installed agent with the written config
	Bundled   agentsvc.Agent // the agent in the package (BundledAgent)
	Files     agentsvc.Installer
	Log       *logrus.Entry
	Events    *status.Events
	env       Environment
	options   Options
	operation string
}

// BundledAgent is the agent binary the package ships: next to the running
// msp-handler (the zip's bin/<arch>/, which the bin/msp-handler shim picks
// by architecture), else <root>/bin/msp-agent.
func BundledAgent(root, handlerExe string) string {
	if handlerExe != "" {
		p := filepath.Join(filepath.Dir(handlerExe), "msp-agent")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return filepath.Join(root, "bin", "msp-agent")
}

// Run executes verb args[0] and returns the process exit code.
func Run(args []string, env Environment, opts Options) int {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if len(args) != 1 {
		fmt.Fprint(opts.Stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case agentsvc.SuperviseVerb:
		return runSupervise(env, opts)
	case agentsvc.MonitorVerb:
		return runMonitor(env, opts)
	}
	op, ok := operations[args[0]]
	if !ok {
		fmt.Fprintf(opts.Stderr, "msp-handler: unknown verb %q\n%s", args[0], usage)
		return ExitUsage
	}
	h, closeLog, err := newHandler(env, opts, op.name)
	if err != nil {
		fmt.Fprintln(opts.Stderr, "msp-handler:", err)
		var ce *codedError
		if errors.As(err, &ce) && h != nil {
			h.report(status.Error, ce.code, err.Error(), op.name)
			return ce.code
		}
		return ExitHandlerEnv
	}
	defer closeLog()
	return h.do(op)
}

func (h *Handler) do(op operation) int {
	ctx, cancel := context.WithTimeout(context.Background(), op.budget)
	defer cancel()
	h.Log.WithField("seq", h.Seq).Info(op.name + " starts")
	if op.transitional {
		h.report(status.Transitioning, 0, op.name+": installing and configuring msp-agent", op.name)
	}
	if op.gateOS {
		if err := h.checkOS(); err != nil {
			return h.finish(op, &codedError{code: ExitUnsupportedOS, operation: "CheckOSVersionSupport", err: err})
		}
	}
	return h.finish(op, op.run(h, ctx))
}

// finish reports the outcome: an error status and its code, or success
// (enable reports its own success with substatuses).
func (h *Handler) finish(op operation, err error) int {
	if err == nil {
		h.Log.Info(op.name + " succeeded")
		_ = h.Events.Emit(op.name, status.LevelInformational, op.name+" succeeded")
		fmt.Fprintf(h.options.Stdout, "%s succeeded\n", op.name)
		return ExitOK
	}
	code, opName := op.failCode, op.name
	var ce *codedError
	if errors.As(err, &ce) {
		code = ce.code
		if ce.operation != "" {
			opName = ce.operation
		}
	}
	h.Log.WithError(err).WithField("exitCode", code).Error(op.name + " failed")
	_ = h.Events.Emit(opName, status.LevelError, err.Error())
	h.report(status.Error, code, err.Error(), opName)
	fmt.Fprintf(h.options.Stderr, "%s failed (exit %d): %v\n", opName, code, err)
	return code
}

// report writes the status file for the command's sequence number; a
// failure to write it is logged (there is nowhere else to say it).
func (h *Handler) report(state status.State, code int, msg, operation string, subs ...status.Substatus) {
	r := status.Report{Name: h.Env.Name, Operation: operation, State: state, Code: code, Message: msg, Substatus: subs}
	if state == status.Success {
		r.AppliedAt = h.env.Now()
	}
	if err := os.MkdirAll(h.Env.StatusFolder, 0o700); err != nil {
		h.Log.WithError(err).Error("cannot create the status folder")
	}
	if err := status.Write(h.Env.StatusFolder, h.Seq, r, h.env.Now()); err != nil {
		h.Log.WithError(err).Error("cannot write the status file")
	}
}

func newHandler(env Environment, opts Options, operation string) (*Handler, func(), error) {
	root, err := henv.FindRoot(env.Getenv, env.Executable())
	if err != nil {
		return nil, nil, err
	}
	he, err := henv.Load(root)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog := newLogger(he.LogFolder, "handler.log")
	h := &Handler{Env: he, env: env, options: opts, operation: operation, Log: log.WithField("operation", operation)}
	h.Events = &status.Events{Folder: he.EventsFolder, Version: env.Getenv("AZURE_GUEST_AGENT_EXTENSION_VERSION"), Now: env.Now}
	if h.Seq, err = henv.SequenceNumber(env.Getenv, he.ConfigFolder); err != nil {
		closeLog()
		return nil, nil, err
	}
	if h.Opts, err = agentsvc.OptionsFromEnv(env.Getenv); err != nil {
		return h, closeLog, fail(ExitHandlerEnv, err)
	}
	l := h.Opts.Layout
	h.Files = agentsvc.Installer{Layout: l}
	h.Installed = agentsvc.Agent{Binary: l.Binary(), Config: l.ConfigFile()}
	h.Bundled = agentsvc.Agent{Binary: BundledAgent(root, env.Executable())}
	h.Ctl = opts.Controller
	if h.Ctl == nil {
		if env.SystemdIsPID1() && !h.Opts.TestMode {
			h.Ctl = agentsvc.Systemd{Layout: l, HandlerRoot: root}
		} else {
			h.Ctl = agentsvc.Supervised{Layout: l, HandlerExe: env.Executable(), Env: childEnv(env, root), LogFolder: he.LogFolder}
		}
	}
	return h, closeLog, nil
}

// childEnv is the environment of the detached supervisor and monitor:
// the handler's own (test-mode variables included) plus its root.
func childEnv(env Environment, root string) []string {
	out := []string{"AZURE_GUEST_AGENT_EXTENSION_PATH=" + root, "PATH=" + env.Getenv("PATH")}
	for _, k := range []string{"MSP_ROOT", "MSP_ENDPOINTS", "MSP_LISTEN", "MSP_CGROUP", "MSP_POLL_SECONDS", "MSP_MONITOR_SECONDS", "AZURE_GUEST_AGENT_EXTENSION_VERSION"} {
		if v := env.Getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func (h *Handler) checkOS() error {
	rel, err := os.ReadFile(h.Opts.Layout.OSRelease())
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", h.Opts.Layout.OSRelease(), err)
	}
	return osgate.Check(rel, h.env.ProbeKernel)
}

// newLogger logs JSON to <dir>/<name>; without a usable folder it logs
// nowhere rather than to stdout (which waagent ships as telemetry).
func newLogger(dir, name string) (*logrus.Logger, func()) {
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(io.Discard)
	if err := os.MkdirAll(dir, 0o755); err == nil {
		if f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
			log.SetOutput(f)
			return log, func() { f.Close() }
		}
	}
	return log, func() {}
}

// OS is the real Environment.
type OS struct{}

// Getenv implements Environment.
func (OS) Getenv(k string) string { return os.Getenv(k) }

// Executable implements Environment.
func (OS) Executable() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return os.Args[0]
}

// SystemdIsPID1 implements Environment.
func (OS) SystemdIsPID1() bool { return agentsvc.SystemdIsPID1() }

// Now implements Environment.
func (OS) Now() time.Time { return time.Now() }
