package redirect

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/bpf/cgroup2"
)

// Config configures Start. The zero value attaches at the cgroup2 root,
// redirects to bpf.DefaultProxy and uses DefaultAddresses.
type Config struct {
	// Cgroup is the cgroup2 directory to attach to; "" means the cgroup2
	// root found in /proc/self/mounts (production). Tests pass a child.
	Cgroup string
	// Proxy is the agent's listener address; zero means 127.0.0.1:3080.
	Proxy netip.AddrPort
	// Addresses maps each endpoint to the address clients connect to; nil
	// means DefaultAddresses(). An endpoint missing here cannot be enabled.
	Addresses map[hostproto.Endpoint]netip.AddrPort
	// ListenerMark is the SO_MARK on the agent's listening socket.
	ListenerMark uint32
	// ExemptMark is the SO_MARK on the agent's own upstream sockets.
	ExemptMark uint32
	// OtherNetns is the policy for callers in other network namespaces.
	OtherNetns bpf.NetnsPolicy
	// NoTaskInfo loads the programs as on a kernel without BTF, so records
	// carry no task identity (bpf.Record.TaskInfo false). For tests of the
	// callers' fallback; Start falls back by itself where the kernel lacks
	// support.
	NoTaskInfo bool
	// PinDir, when set, is a directory on a bpffs mount (created if
	// missing; Start fails naming the fix if it is not on bpffs) where
	// Start pins the links and maps, so the programs keep running with the
	// last targets while the agent is stopped, crashed or restarting: an
	// enforced endpoint's connect() fails fast with EPERM, an audited one
	// reaches its destination directly (ebpf.md §6.6, §7.3). Start adopts
	// or replaces what it finds there (Status.Pins); Close leaves it;
	// Cleanup removes it. "" ties everything to the process (tests).
	PinDir string
}

// Redirector owns the loaded and attached programs. Its methods are safe
// for concurrent use.
type Redirector struct {
	objs    *bpf.Objects
	links   *bpf.Links
	cgroup  string
	addrs   map[hostproto.Endpoint]netip.AddrPort
	removed []ebpf.ProgramID

	mu    sync.Mutex // guards modes and serialises target updates
	modes hostproto.Modes
}

// Start removes stale legacy attachments from the cgroup, loads the programs
// and attaches them. Without PinDir every endpoint starts disabled: nothing
// is redirected until SetModes.
//
// With PinDir, Start takes over what a previous agent pinned there:
//   - adopted (the pinned maps match this build's layout): the programs use
//     the pinned maps, so records the old programs wrote are found by Take
//     and the targets keep applying; the new programs are swapped into the
//     pinned links atomically. No connection meets an empty map.
//   - replaced (a layout changed, or pins are incomplete): new maps, with
//     the old targets copied in, then the programs are swapped into the
//     pinned links one hook after another (microseconds, in the order
//     sockops, getpeername, connect), then the new maps are pinned over the
//     old. A connection redirected between two of those swaps may be
//     recorded in a map the proxy does not read (421), which is why the
//     agent must not listen before Start returns: without its listener no
//     connection is redirected at all.
//
// In both cases the endpoints' modes start as the surviving targets say
// (fail-closed enforce, fail-open audit, absent disabled) until SetModes.
func Start(cfg Config) (*Redirector, error) {
	addrs := cfg.Addresses
	if addrs == nil {
		addrs = DefaultAddresses()
	}
	if err := checkAddresses(addrs); err != nil {
		return nil, err
	}
	cg := cfg.Cgroup
	if cg == "" {
		var err error
		if cg, err = cgroup2.Root(); err != nil {
			return nil, fmt.Errorf("start eBPF redirector: %w", err)
		}
	}
	if cfg.PinDir != "" {
		lock, err := bpf.LockPins(cfg.PinDir)
		if err != nil {
			return nil, fmt.Errorf("start eBPF redirector: %w", err)
		}
		defer lock.Close()
	}
	removed, err := bpf.RemoveLegacy(cg)
	if err != nil {
		return nil, fmt.Errorf("start eBPF redirector: %w", err)
	}
	objs, err := bpf.Load(bpf.Options{
		Proxy:        cfg.Proxy,
		ListenerMark: cfg.ListenerMark,
		ExemptMark:   cfg.ExemptMark,
		OtherNetns:   cfg.OtherNetns,
		NoTaskInfo:   cfg.NoTaskInfo,
		PinDir:       cfg.PinDir,
	})
	if err != nil {
		return nil, fmt.Errorf("start eBPF redirector: %w", err)
	}
	links, err := objs.Attach(cg)
	if err != nil {
		objs.Close()
		return nil, fmt.Errorf("start eBPF redirector: %w", err)
	}
	r := &Redirector{objs: objs, links: links, cgroup: cg, addrs: maps.Clone(addrs), removed: removed}
	if r.modes, err = r.survivingModes(); err != nil {
		r.Close()
		return nil, fmt.Errorf("start eBPF redirector: %w", err)
	}
	return r, nil
}

// survivingModes reads back the modes the targets map encodes (pinned
// targets survive a restart): fail-closed is enforce, fail-open audit, and
// an endpoint without its configured address in the map is disabled.
func (r *Redirector) survivingModes() (hostproto.Modes, error) {
	var modes hostproto.Modes
	targets, err := r.objs.Targets()
	if err != nil {
		return modes, err
	}
	for ep, a := range r.addrs {
		t, ok := targets[a]
		if id, _ := kernelID(ep); !ok || t.Endpoint != id {
			continue
		}
		m := hostproto.ModeAudit
		if t.Policy == bpf.FailClosed {
			m = hostproto.ModeEnforce
		}
		modes, _ = withMode(modes, ep, m)
	}
	return modes, nil
}

// withMode returns modes with ep's mode set to m; false for an unknown
// endpoint.
func withMode(modes hostproto.Modes, ep hostproto.Endpoint, m hostproto.Mode) (hostproto.Modes, bool) {
	switch ep {
	case hostproto.IMDS:
		modes.IMDS = m
	case hostproto.WireServer:
		modes.WireServer = m
	case hostproto.HostGAPlugin:
		modes.HostGAPlugin = m
	default:
		return modes, false
	}
	return modes, true
}

// Take returns and deletes the record of the redirected connection whose
// client is peer; ok is false for a direct connection (agent.md §5.1).
func (r *Redirector) Take(peer netip.AddrPort) (bpf.Record, bool, error) {
	return r.objs.Take(peer)
}

// SetModes applies every endpoint's effective mode. It is idempotent, so
// the key keeper calls it on every poll (ebpf.md §6.4, host-protocol.md
// §7.2). Changes take effect for the next connect().
func (r *Redirector) SetModes(modes hostproto.Modes) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setModes(modes)
}

// SetMode changes one endpoint's mode and keeps the others.
func (r *Redirector) SetMode(ep hostproto.Endpoint, m hostproto.Mode) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	modes, ok := withMode(r.modes, ep, m)
	if !ok {
		_, err := kernelID(ep)
		return fmt.Errorf("set mode: %w", err)
	}
	return r.setModes(modes)
}

func (r *Redirector) setModes(modes hostproto.Modes) error {
	want := make(map[netip.AddrPort]bpf.Target)
	for _, ep := range hostproto.Endpoints {
		t, on, err := target(ep, modes.Of(ep))
		if err != nil {
			return err
		}
		if !on {
			continue
		}
		a, ok := r.addrs[ep]
		if !ok {
			return fmt.Errorf("enable %s: no address configured for it (Config.Addresses)", ep)
		}
		want[a] = t
	}
	if err := r.objs.SetTargets(want); err != nil {
		return err
	}
	r.modes = modes
	return nil
}

// Status is what the agent reports about the redirector.
type Status struct {
	Cgroup        string                        // where the programs are attached
	Modes         hostproto.Modes               // as last set
	Targets       map[netip.AddrPort]bpf.Target // what the kernel redirects now
	Counters      bpf.Counters
	RemovedLegacy []ebpf.ProgramID // stale attachments removed at start
	// TaskInfo is true when records carry the caller's task identity
	// (effective uid, executable, start time) read by the kernel at
	// connect; NoTaskInfo says why not otherwise.
	TaskInfo   bool
	NoTaskInfo string
	// PinDir is Config.PinDir; Pins says what Start found there: "" (no
	// PinDir), "created", "adopted" or "replaced", and PinReason why it
	// replaced.
	PinDir    string
	Pins      bpf.PinState
	PinReason string
}

// Status reads the kernel's targets and counters.
func (r *Redirector) Status() (Status, error) {
	r.mu.Lock()
	modes := r.modes
	r.mu.Unlock()
	targets, err := r.objs.Targets()
	if err != nil {
		return Status{}, err
	}
	c, err := r.objs.Counters()
	if err != nil {
		return Status{}, err
	}
	pins := r.objs.Pinning()
	st := Status{
		Cgroup: r.cgroup, Modes: modes, Targets: targets, Counters: c, RemovedLegacy: r.removed, TaskInfo: true,
		PinDir: pins.Dir, Pins: pins.State, PinReason: pins.Reason,
	}
	if err := r.objs.TaskInfo(); err != nil {
		st.TaskInfo, st.NoTaskInfo = false, err.Error()
	}
	return st, nil
}

// Close detaches the programs and releases them. With PinDir it releases
// only this process's handles: the pinned links keep the programs attached
// with the pinned maps, as after a crash. Cleanup removes them.
func (r *Redirector) Close() error {
	return errors.Join(r.links.Close(), r.objs.Close())
}

// Cleanup removes everything an agent configured with this cgroup ("" =
// the cgroup2 root) and pinDir left behind, for uninstall: it detaches the
// links pinned in pinDir (also if an agent still holds them), unpins them
// and the maps, removes pinDir if nothing else is in it, and removes
// legacy attachments of our programs from the cgroup. It needs no running
// agent and is idempotent.
func Cleanup(cgroup, pinDir string) error {
	if cgroup == "" {
		var err error
		if cgroup, err = cgroup2.Root(); err != nil {
			return fmt.Errorf("clean up eBPF redirector: %w", err)
		}
	}
	var errPins error
	if pinDir != "" {
		if _, err := os.Stat(pinDir); err == nil {
			lock, err := bpf.LockPins(pinDir)
			if err != nil {
				return fmt.Errorf("clean up eBPF redirector: %w", err)
			}
			defer lock.Close()
		}
		errPins = bpf.RemovePins(pinDir)
	}
	_, errLegacy := bpf.RemoveLegacy(cgroup)
	if err := errors.Join(errPins, errLegacy); err != nil {
		return fmt.Errorf("clean up eBPF redirector: %w", err)
	}
	return nil
}
