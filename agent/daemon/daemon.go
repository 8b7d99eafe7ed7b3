package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/config"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/keykeeper"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/provision"
	"github.com/mspguest/msp/agent/proxy"
	"github.com/mspguest/msp/agent/redirect"
	"github.com/mspguest/msp/agent/status"
	"github.com/mspguest/msp/bpf"
)

// SO_MARK values of the agent's sockets (ebpf.md §6.5–§6.6). Setting a
// mark needs CAP_NET_ADMIN, so no unprivileged process can forge them.
// They are unlikely to collide with policy-routing marks.
const (
	// ExemptMark is on every socket the agent dials itself (upstream and
	// host): the redirector leaves those connects alone.
	ExemptMark uint32 = 0x6d737061 // "mspa"
	// ListenerMark is on the listening socket: the fail-open check
	// redirects only to a listener carrying it, so a squatter on the
	// port while the agent is down gets nothing.
	ListenerMark uint32 = 0x6d73706c // "mspl"
)

// ErrRestart is returned by Run when the configuration changed in a way
// that needs a new process (addresses, directories, limits).
var ErrRestart = errors.New("configuration changed: restart to apply it")

// Options configure Run.
type Options struct {
	// ConfigPath is the configuration file; "" means config.DefaultPath.
	ConfigPath string
	// Version is reported in the status document.
	Version string
	// LogOutput receives the agent log (JSON lines); nil means stderr.
	LogOutput io.Writer
	// Reload, when it receives, re-reads the configuration (SIGHUP).
	Reload <-chan struct{}
	// StatusInterval is how often status.json is written; 0 means 60 s.
	StatusInterval time.Duration
	// ConfigCheckInterval is how often the file is checked for changes;
	// 0 means 5 s.
	ConfigCheckInterval time.Duration
}

// Daemon is one running agent.
type Daemon struct {
	opts    Options
	log     *logrus.Logger
	watcher *config.Watcher
	cfg     atomic.Pointer[config.Config]
	start   time.Time

	tracker *provision.Tracker
	redir   *redirect.Redirector // nil when eBPF failed
	ebpf    status.Module
	proxy   *proxy.Proxy
	ln      net.Listener
	lnMod   status.Module
	keeper  *keykeeper.Keeper
	audit   *audit.Log
	metrics *metrics.Registry
	tee     *tee

	applyMu sync.Mutex // serialises apply: one state, one config at a time
	state   atomic.Pointer[keykeeper.State]
	hashes  [len(hostproto.Endpoints) + 1][32]byte
	applied *hostproto.Modes // what the redirector was last told (under applyMu)
	restart chan struct{}
}

// Run starts the agent and runs it until ctx ends (nil) or the
// configuration needs a restart (ErrRestart). A configuration that cannot
// be read stops it at once with an error naming the field.
func Run(ctx context.Context, opts Options) error {
	w, err := config.NewWatcher(opts.ConfigPath)
	if err != nil {
		return err
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 60 * time.Second
	}
	if opts.ConfigCheckInterval <= 0 {
		opts.ConfigCheckInterval = 5 * time.Second
	}
	d := &Daemon{opts: opts, watcher: w, start: time.Now(), restart: make(chan struct{}, 1)}
	d.cfg.Store(w.Current())
	d.log = newLogger(opts.LogOutput, w.Current().LogLevel)
	return d.run(ctx)
}

func newLogger(out io.Writer, level logrus.Level) *logrus.Logger {
	if out == nil {
		out = os.Stderr
	}
	l := logrus.New()
	l.SetOutput(out)
	l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	l.SetLevel(level)
	return l
}

func (d *Daemon) run(ctx context.Context) error {
	cfg := d.cfg.Load()
	if err := prepareDirs(cfg); err != nil {
		return err
	}
	d.log.WithFields(logrus.Fields{"version": d.opts.Version, "config": cfg.Path, "listen": cfg.Listen.String()}).Info("msp-agent starting")

	var err error
	d.audit, err = audit.Open(audit.Options{Dir: cfg.LogDir, Logger: d.log})
	if err != nil {
		return err
	}
	defer d.audit.Close()
	d.metrics = metrics.New()
	d.tee = &tee{log: d.audit, metrics: d.metrics}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.tracker = provision.New(provision.Options{
		KeysDir: cfg.KeysDir(),
		Latched: func() bool { st := d.state.Load(); return st != nil && st.Stable() },
		Notify:  d.notify,
		Finished: func(errText string) {
			if errText == "" {
				d.log.Info("provisioning finished")
			} else {
				d.log.WithField("error", errText).Error("provisioning finished with an error")
			}
		},
	})

	d.startRedirector(cfg)
	defer d.closeRedirector()

	if err := d.newProxy(cfg); err != nil {
		return err
	}
	defer d.proxy.Close()

	d.keeper, err = keykeeper.New(keykeeper.Options{
		WireServer:   cfg.Endpoints.WireServer.String(),
		KeysDir:      cfg.KeysDir(),
		ExemptMark:   ExemptMark,
		PollInterval: cfg.PollInterval,
		Log:          d.log.WithField("module", "keykeeper"),
		OnState:      d.onState,
	})
	if err != nil {
		return err
	}
	d.registerMetrics()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.keeper.Run(ctx) }()
	// The pinned fail-closed targets redirect again the moment a marked
	// listener exists: open it once the first poll had its chance to load
	// the cached key, so that a restart does not answer 503 no-key.
	d.awaitFirstState(ctx, firstStateWait)
	if err := d.listen(ctx); err != nil {
		return err
	}
	wg.Add(3)
	go func() { defer wg.Done(); d.statusLoop(ctx) }()
	go func() { defer wg.Done(); d.configLoop(ctx) }()
	go func() {
		defer wg.Done()
		sock := filepath.Join(cfg.StateDir, "metrics.sock")
		if err := metrics.Serve(ctx, sock, d.metrics); err != nil {
			d.log.WithError(err).Warn("metrics socket unavailable")
		}
	}()

	select {
	case <-ctx.Done():
		d.log.Info("msp-agent stopping")
		return nil
	case <-d.restart:
		d.log.Warn("msp-agent restarting to apply its new configuration")
		return ErrRestart
	}
}

// prepareDirs creates the state directory (0700) with rules/, and the log
// directory (0750), and makes existing ones the agent's: a symbolic link
// or a non-directory is refused, another owner and a wider mode are
// fixed (as the key keeper does for keys/). A directory another user owns
// would let that user swap the rule files or plant a link where the agent
// writes as root. keys/ is the key keeper's.
func prepareDirs(cfg *config.Config) error {
	uid, gid := os.Geteuid(), os.Getegid()
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{cfg.StateDir, 0o700}, {cfg.RulesDir(), 0o700}, {cfg.LogDir, 0o750}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		fi, err := os.Lstat(d.path)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is a %v, not a directory: remove it so that the agent can create the directory", d.path, fi.Mode().Type())
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
			if err := os.Lchown(d.path, uid, gid); err != nil {
				return fmt.Errorf("%s: owned by uid %d gid %d: chown to uid %d gid %d: %w", d.path, st.Uid, st.Gid, uid, gid, err)
			}
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
	}
	return nil
}

// redirectConfig is the redirector's configuration for cfg.
func redirectConfig(cfg *config.Config) redirect.Config {
	addrs := map[hostproto.Endpoint]netip.AddrPort{}
	for _, ep := range hostproto.Endpoints {
		addrs[ep] = cfg.Endpoints.Of(ep)
	}
	netns := bpf.NetnsPass
	if cfg.NetnsPolicy == config.NetnsDeny {
		netns = bpf.NetnsDeny
	}
	return redirect.Config{
		Cgroup:       cfg.Cgroup,
		Proxy:        cfg.Listen,
		Addresses:    addrs,
		ListenerMark: ListenerMark,
		ExemptMark:   ExemptMark,
		OtherNetns:   netns,
		PinDir:       cfg.BPFFSDir,
	}
}

func (d *Daemon) startRedirector(cfg *config.Config) {
	r, err := startRedirect(cfg)
	// Loading parses the kernel's BTF: several MiB of garbage the runtime
	// would otherwise keep mapped for minutes (idle RSS).
	debug.FreeOSMemory()
	if err != nil {
		d.ebpf = status.Module{Status: status.Stopped, Message: err.Error()}
		d.tracker.Fail(provision.Redirector, err.Error())
		d.log.WithError(err).Error("eBPF redirector unavailable: nothing is intercepted")
		return
	}
	d.redir = r
	d.ebpf = status.Module{Status: status.Running, Message: "attached to cgroup " + describeCgroup(cfg.Cgroup)}
	if rs, err := r.Status(); err == nil {
		d.log.WithFields(logrus.Fields{"pins": string(rs.Pins), "pinDir": rs.PinDir, "reason": rs.PinReason}).Info("eBPF redirector attached")
	}
	_ = d.tracker.Set(provision.Redirector)
}

// startRedirect mounts bpffs for the pins when it is absent, then loads,
// attaches and pins the programs, adopting what a previous agent pinned.
func startRedirect(cfg *config.Config) (*redirect.Redirector, error) {
	if err := MountBPFFS(cfg.BPFFSDir); err != nil {
		return nil, err
	}
	return redirect.Start(redirectConfig(cfg))
}

func describeCgroup(cg string) string {
	if cg == "" {
		return "root"
	}
	return cg
}

func (d *Daemon) closeRedirector() {
	if d.redir != nil {
		if err := d.redir.Close(); err != nil {
			d.log.WithError(err).Warn("closing the eBPF redirector")
		}
	}
}

// noRecords answers every lookup "no record" when eBPF is unavailable:
// the proxy then serves only /provision (everything else is 421).
type noRecords struct{}

func (noRecords) Take(netip.AddrPort) (bpf.Record, bool, error) { return bpf.Record{}, false, nil }

func (d *Daemon) newProxy(cfg *config.Config) error {
	var recs proxy.Records = noRecords{}
	if d.redir != nil {
		recs = d.redir
	}
	eps := map[netip.AddrPort]hostproto.Endpoint{}
	for _, ep := range hostproto.Endpoints {
		eps[cfg.Endpoints.Of(ep)] = ep
	}
	resolver := identity.NewResolver(identity.Options{})
	p, err := proxy.New(proxy.Config{
		Addr:             cfg.Listen.String(),
		ListenerMark:     ListenerMark,
		ExemptMark:       ExemptMark,
		Records:          recs,
		Endpoints:        eps,
		Identify:         resolver.Resolve,
		Audit:            d.tee,
		Provision:        d.serveProvision,
		AggregatedStatus: d.serveStatus,
		Now:              d.hostNow,
		Log:              d.log.WithField("module", "proxy"),
		Limits: proxy.Limits{
			HeaderRead:      cfg.Limits.HeaderRead,
			BodyRead:        cfg.Limits.BodyRead,
			Idle:            cfg.Limits.Idle,
			Dial:            cfg.Limits.Dial,
			ResponseHeader:  cfg.Limits.ResponseHeader,
			BodyIdle:        cfg.Limits.BodyIdle,
			MaxConns:        cfg.Limits.MaxConnections,
			MaxConnsPerUser: cfg.Limits.MaxConnectionsPerUID,
		},
	})
	if err != nil {
		return err
	}
	d.proxy = p
	return nil
}

// firstStateWait bounds how long the listener waits for the key keeper's
// first iteration.
const firstStateWait = 5 * time.Second

// awaitFirstState waits until the key keeper delivered a state, at most d.
func (d *Daemon) awaitFirstState(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	for d.state.Load() == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// listen binds the listener (the proxy retries an address in use, agent.md
// §4) and serves it. A failure is reported in status, not fatal: the key
// keeper and provisioning go on.
func (d *Daemon) listen(ctx context.Context) error {
	p := d.proxy
	var err error
	d.ln, err = p.Listen()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		d.lnMod = status.Module{Status: status.Stopped, Message: err.Error()}
		d.tracker.Fail(provision.Listener, err.Error())
		d.log.WithError(err).Error("proxy listener unavailable")
		return nil
	}
	d.lnMod = status.Module{Status: status.Running, Message: "listening on " + d.ln.Addr().String()}
	_ = d.tracker.Set(provision.Listener)
	go func() {
		if err := p.Serve(d.ln); err != nil && ctx.Err() == nil {
			d.log.WithError(err).Error("proxy stopped serving")
		}
	}()
	return nil
}

// hostNow is the clock of x-ms-azure-host-date: host time once synced.
func (d *Daemon) hostNow() time.Time {
	if st := d.state.Load(); st != nil {
		return st.HostNow(time.Now())
	}
	return time.Now().UTC()
}

// notify is the /provision wake-up (host-protocol.md §7.1): in a disabled
// or Unknown state provisioning restarts and the keeper polls at once.
func (d *Daemon) notify() {
	if st := d.state.Load(); st == nil || !st.Stable() {
		d.tracker.Restart()
	}
	d.keeper.Wake()
}

// onState applies one key keeper iteration.
func (d *Daemon) onState(st *keykeeper.State) {
	d.state.Store(st)
	d.apply(d.cfg.Load(), st)
}

// apply makes the proxy, the redirector and provisioning follow cfg and
// st: policies (recompiled when their inputs changed), the signer, the
// host's modes, and the redirect policy.
func (d *Daemon) apply(cfg *config.Config, st *keykeeper.State) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if st == nil {
		return
	}
	for _, ep := range hostproto.Endpoints {
		snap := d.policy(cfg, st, ep)
		if h := snap.Hash(); h != d.hashes[ep] {
			d.hashes[ep] = h
			d.proxy.SetPolicy(ep, snap)
			fields := logrus.Fields{"endpoint": ep.String(), "mode": snap.Mode().String(), "id": snap.ID(), "privileges": snap.Privileges()}
			d.log.WithFields(fields).Info("authorization policy applied")
			for _, w := range snap.Warnings() {
				d.log.WithField("endpoint", ep.String()).Warn(w)
			}
		}
	}
	d.proxy.SetSigner(st.Signer)
	d.proxy.SetHostModes(st.HostModes)
	want := RedirectModes(authz.EffectiveModes(st.HostModes, cfg.Settings.IMDS, cfg.Settings.WireServer), st.HostModes, st.Signer != nil)
	if d.redir != nil {
		if err := d.redir.SetModes(want); err != nil {
			d.log.WithError(err).Error("applying the redirect policy")
		} else if prev := d.applied; prev == nil || *prev != want {
			d.applied = &want
			d.log.WithFields(logrus.Fields{"imds": want.IMDS.String(), "wireserver": want.WireServer.String(), "hostga": want.HostGAPlugin.String()}).Info("redirect policy applied")
		}
	}
	if st.Latched {
		_ = d.tracker.Set(provision.KeyLatch)
	} else if st.LastError != nil {
		d.tracker.Fail(provision.KeyLatch, st.LastError.Error())
	}
}

// RedirectModes is the redirect policy (host-protocol.md §7.2): the
// effective mode of each endpoint, except that an endpoint the host
// enforces is not redirected (disabled) while no key is latched.
func RedirectModes(effective, host hostproto.Modes, keyLatched bool) hostproto.Modes {
	hold := func(eff, h hostproto.Mode) hostproto.Mode {
		if h == hostproto.ModeEnforce && !keyLatched {
			return hostproto.ModeDisabled
		}
		return eff
	}
	return hostproto.Modes{
		IMDS:         hold(effective.IMDS, host.IMDS),
		WireServer:   hold(effective.WireServer, host.WireServer),
		HostGAPlugin: hold(effective.HostGAPlugin, host.HostGAPlugin),
	}
}

// policy merges an endpoint's sources: the host's item (and mode), the
// settings item, and the local rule file when the host item enables it.
func (d *Daemon) policy(cfg *config.Config, st *keykeeper.State, ep hostproto.Endpoint) *authz.Snapshot {
	hm := st.HostModes.Of(ep)
	in := authz.Input{Host: st.Item(ep), HostMode: &hm, Settings: cfg.Settings.Item(ep)}
	if in.Host != nil {
		if _, useLocal := authz.ParseRuleID(in.Host.ID); useLocal {
			item, err := rulefile.LocalFiles{Dir: cfg.RulesDir()}.Read(localEndpoint(ep))
			switch {
			case err == nil:
				in.Local = &item
			case !errors.Is(err, rulefile.ErrNoFile):
				in.LocalErr = err
				d.log.WithError(err).WithField("endpoint", ep.String()).Error("local rule file refused: the endpoint fails closed")
			}
		}
	}
	return authz.Merge(in)
}

// localEndpoint is the endpoint whose local file applies: HostGAPlugin
// follows WireServer.
func localEndpoint(ep hostproto.Endpoint) hostproto.Endpoint {
	if ep == hostproto.HostGAPlugin {
		return hostproto.WireServer
	}
	return ep
}

// configLoop follows the configuration file and SIGHUP.
func (d *Daemon) configLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.ConfigCheckInterval)
	defer t.Stop()
	for {
		var cfg *config.Config
		var err error
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
			cfg, err = d.watcher.Reload()
		case <-t.C:
			cfg, err = d.watcher.Check()
		}
		if err != nil {
			d.log.WithError(err).Error("configuration not reloaded: the last good one stays in force")
			continue
		}
		if cfg != nil {
			d.reconfigure(cfg)
		}
	}
}

// reconfigure applies a new configuration: settings and log level live,
// anything else by a restart.
func (d *Daemon) reconfigure(cfg *config.Config) {
	old := d.cfg.Load()
	if !LiveChange(old, cfg) {
		select {
		case d.restart <- struct{}{}:
		default:
		}
		return
	}
	d.cfg.Store(cfg)
	d.log.SetLevel(cfg.LogLevel)
	d.log.WithField("config", cfg.Path).Info("configuration reloaded")
	d.apply(cfg, d.state.Load())
}

// LiveChange reports whether next differs from prev only in what applies
// without a restart: the settings and the log level.
func LiveChange(prev, next *config.Config) bool {
	a, b := *prev, *next
	a.Settings, b.Settings = config.Settings{}, config.Settings{}
	a.LogLevel, b.LogLevel = 0, 0
	a.Path, b.Path = "", ""
	a.Hash, b.Hash = [32]byte{}, [32]byte{}
	return reflect.DeepEqual(a, b)
}
