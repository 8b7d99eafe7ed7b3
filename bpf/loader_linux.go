package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// DefaultProxy is where redirected connections go unless Options.Proxy says
// otherwise (agent.md §4).
var DefaultProxy = netip.MustParseAddrPort("127.0.0.1:3080")

// NetnsPolicy is what happens to a connect() to a target from a network
// namespace other than the one Load ran in (ebpf.md §6.7).
type NetnsPolicy uint8

const (
	// NetnsPass leaves such connections unchanged (the default): the proxy
	// listens on the host's loopback, and rewriting another namespace's
	// connection to its own loopback would break it.
	NetnsPass NetnsPolicy = iota
	// NetnsDeny makes such connects fail with EPERM, so containers with their
	// own network namespace cannot reach the metadata services at all.
	NetnsDeny
	// NetnsRedirect turns the guard off. Only for a proxy reachable from every
	// namespace; the listener check still applies in the caller's namespace.
	NetnsRedirect
)

// config.flags bits in proxy.bpf.c.
const (
	flagNetnsGuard     = 1 << 0
	flagListenerCheck  = 1 << 1
	flagDenyOtherNetns = 1 << 2
	flagTaskInfo       = 1 << 3
)

// Options configure Load. The zero value redirects to DefaultProxy, trusts
// any listener there, exempts nothing and passes other namespaces.
type Options struct {
	// Proxy is the IPv4 address and port connections are redirected to.
	Proxy netip.AddrPort
	// ListenerMark is the SO_MARK the agent sets on its listening socket; a
	// listener without it (a squatter on the port) is not trusted and the
	// targets' failure policy applies. 0 trusts any listener.
	ListenerMark uint32
	// ExemptMark is the SO_MARK the agent sets on its own upstream sockets,
	// which are never redirected (survives restarts and forks). 0 = off.
	// Like ExemptTGID it applies only in the host network namespace (also
	// with NetnsRedirect): in a namespace of its own any process may set
	// any mark.
	ExemptMark uint32
	// ExemptTGID is a process whose connects are never redirected. 0 = off.
	ExemptTGID uint32
	// OtherNetns is the policy for callers in other network namespaces.
	OtherNetns NetnsPolicy
	// NoTaskInfo loads the programs as on a kernel without BTF: records
	// carry no task identity (Record.TaskInfo is false). For tests of that
	// fallback; Load falls back by itself when the kernel lacks support.
	NoTaskInfo bool
	// PinDir, when set, is a directory on a bpffs mount (created if
	// missing) where Attach pins the links and maps, so the programs keep
	// running with their targets after the process exits (ebpf.md §7.3).
	// Load adopts compatible pinned maps or replaces them; see Pinning.
	// "" keeps everything tied to the process.
	PinDir string
}

// Objects are the loaded programs and maps. Its methods are safe for
// concurrent use; Close releases them (links hold their own references).
type Objects struct {
	objs       proxyObjects
	hostNetns  uint64
	noTaskInfo error // why records carry no task identity; nil when they do
	takeMisses atomic.Uint64
	pins       *pinSet // nil without Options.PinDir
}

// ErrTaskInfoOff is why records carry no task identity when
// Options.NoTaskInfo asked for that.
var ErrTaskInfoOff = errors.New("task identity turned off by Options.NoTaskInfo")

// Load probes the kernel, writes the configuration into the programs'
// read-only data (fixed for their lifetime) and loads programs and maps. It
// must run in the host network namespace, whose cookie becomes the guard's
// reference. Nothing is attached yet.
//
// Where the kernel has BTF, connect4/6 also capture the caller's task
// identity (Record.TaskInfo); otherwise, or when that load fails, Load
// loads the programs without it and [Objects.TaskInfo] says why.
//
// With Options.PinDir the maps pinned there are adopted when this build's
// layout matches theirs (records the old programs wrote stay readable by
// Take); otherwise new maps are made and the old targets copied into them,
// so an enforced endpoint stays fail-closed. Nothing pinned changes before
// Attach; see [Objects.Pinning].
func Load(opts Options) (*Objects, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	if err := Probe(); err != nil {
		return nil, err
	}
	if cfg.HostNetnsCookie, err = netnsCookie(); err != nil {
		return nil, err
	}
	o := &Objects{hostNetns: cfg.HostNetnsCookie, noTaskInfo: ErrTaskInfoOff}
	if opts.PinDir != "" {
		spec, err := loadProxy()
		if err != nil {
			return nil, err
		}
		if o.pins, err = openPins(opts.PinDir, spec); err != nil {
			return nil, err
		}
		defer o.pins.release()
	}
	if err := o.loadPrograms(opts, cfg); err != nil {
		return nil, err
	}
	if o.pins != nil && o.pins.oldTargets != nil {
		if err := copyTargets(o.pins.oldTargets, o.objs.Targets); err != nil {
			o.pins.Reason += "; " + err.Error()
		}
	}
	return o, nil
}

// loadPrograms loads the collection with task identity where the kernel
// allows it, else without.
func (o *Objects) loadPrograms(opts Options, cfg proxyConfig) error {
	if !opts.NoTaskInfo {
		var kernel *btf.Spec
		if kernel, o.noTaskInfo = taskInfoSupport(); o.noTaskInfo == nil {
			taskCfg := cfg
			taskCfg.Flags |= flagTaskInfo
			err := o.load(taskCfg, kernel)
			if err == nil {
				return nil
			}
			o.noTaskInfo = fmt.Errorf("load the programs with task identity: %w", err)
		}
	}
	// Without kernel BTF: relocate against no types at all. The task
	// reads are then poisoned, in the branch that FLAG_TASK_INFO, clear
	// in the frozen .rodata, lets the verifier prove dead.
	none, err := noKernelTypes()
	if err != nil {
		return err
	}
	return o.load(cfg, none)
}

// noKernelTypes returns an empty BTF spec: CO-RE relocations against it
// find nothing, as on a kernel without BTF.
func noKernelTypes() (*btf.Spec, error) {
	b, err := btf.NewBuilder(nil, nil)
	if err == nil {
		var s *btf.Spec
		if s, err = b.Spec(); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("build empty BTF: %w", err)
}

// load loads the embedded collection with cfg, CO-RE relocated against
// kernel, into o.objs.
func (o *Objects) load(cfg proxyConfig, kernel *btf.Spec) error {
	spec, err := loadProxy()
	if err != nil {
		return err
	}
	if err := spec.Variables["cfg"].Set(&cfg); err != nil {
		return fmt.Errorf("set eBPF config: %w", err)
	}
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}}
	if o.pins != nil {
		opts.MapReplacements = o.pins.adopt // nil unless adopting
	}
	if err := spec.LoadAndAssign(&o.objs, opts); err != nil {
		if isNotSupported(err) {
			return &UnsupportedError{Feature: "a feature the programs need (BTF, read-only global data)", MinKernel: "5.7", Err: err}
		}
		return fmt.Errorf("load eBPF programs: %w", privilegeHint(err))
	}
	return nil
}

func (opts Options) config() (proxyConfig, error) {
	proxy := opts.Proxy
	if !proxy.IsValid() {
		proxy = DefaultProxy
	}
	a := proxy.Addr().Unmap()
	if !a.Is4() || proxy.Port() == 0 {
		return proxyConfig{}, fmt.Errorf("proxy address %q: want an IPv4 address and port such as %s", opts.Proxy, DefaultProxy)
	}
	cfg := proxyConfig{
		ProxyIp4:     ip4Key(a),
		ProxyPort:    portKey(proxy.Port()),
		Flags:        flagListenerCheck,
		ExemptMark:   opts.ExemptMark,
		ExemptTgid:   opts.ExemptTGID,
		ListenerMark: opts.ListenerMark,
	}
	switch opts.OtherNetns {
	case NetnsPass:
		cfg.Flags |= flagNetnsGuard
	case NetnsDeny:
		cfg.Flags |= flagNetnsGuard | flagDenyOtherNetns
	case NetnsRedirect:
	default:
		return proxyConfig{}, fmt.Errorf("other-netns policy %d: want NetnsPass, NetnsDeny or NetnsRedirect", opts.OtherNetns)
	}
	return cfg, nil
}

// netnsCookie returns the cookie of the caller's network namespace.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("read the netns cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, &UnsupportedError{Feature: "SO_NETNS_COOKIE", MinKernel: "5.14", Err: err}
	}
	return c, nil
}

// privilegeHint adds the usual fix to a permission error.
func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: run the agent as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)", err)
	}
	return err
}

// TaskInfo returns nil when records carry the caller's task identity
// (Record.TaskInfo), else why they do not: ErrTaskInfoOff, an
// *UnsupportedError for a kernel without BTF, or the failed load.
func (o *Objects) TaskInfo() error { return o.noTaskInfo }

// Pinning reports what Load found under Options.PinDir and did with it;
// the zero value without a PinDir.
func (o *Objects) Pinning() Pinning {
	if o.pins == nil {
		return Pinning{}
	}
	return o.pins.Pinning
}

// HostNetnsCookie returns the netns cookie Load recorded as the host's.
func (o *Objects) HostNetnsCookie() uint64 { return o.hostNetns }

// Take returns the record of the redirected connection whose client is
// peer (the accepted connection's remote address) and deletes it, so each
// record is used once. ok is false when there is none: the connection was
// not redirected (a direct connection) or its record was evicted.
func (o *Objects) Take(peer netip.AddrPort) (Record, bool, error) {
	a := peer.Addr().Unmap()
	if !a.Is4() {
		o.takeMisses.Add(1)
		return Record{}, false, nil
	}
	key := proxyPortKey{LocalIp4: ip4Key(a), LocalPort: uint32(peer.Port())}
	var rec proxyConnRecord
	err := o.objs.ByPort.LookupAndDelete(&key, &rec)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		o.takeMisses.Add(1)
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("take eBPF record for %s: %w", peer, err)
	}
	return newRecord(&rec), true, nil
}

// Close unloads the programs and maps. Links made by Attach keep the
// programs attached until they are closed.
func (o *Objects) Close() error {
	if err := o.objs.Close(); err != nil {
		return fmt.Errorf("close eBPF objects: %w", err)
	}
	return nil
}
