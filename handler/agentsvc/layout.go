package agentsvc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mspguest/msp/agent/unitfile"
)

// Unit names.
const (
	AgentUnit   = unitfile.Name
	MonitorUnit = "msp-handler-monitor.service"
)

// Layout says where the agent's files live. Root is "/" on a VM and the
// MSP_ROOT directory in test mode.
type Layout struct {
	Root string
}

func (l Layout) path(p string) string { return filepath.Join(l.Root, p) }

// Binary is the installed agent.
func (l Layout) Binary() string { return l.path("/usr/sbin/msp-agent") }

// ConfigFile is the agent's configuration.
func (l Layout) ConfigFile() string { return l.path("/etc/msp-agent/config.json") }

// UnitDir holds the systemd units the handler installs.
func (l Layout) UnitDir() string { return l.path("/etc/systemd/system") }

// StateDir is the agent's state (keys, rules); removed by uninstall.
func (l Layout) StateDir() string { return l.path("/var/lib/msp-agent") }

// LogDir is the agent's logs and aggregate status; kept by uninstall.
func (l Layout) LogDir() string { return l.path("/var/log/msp-agent") }

// BpffsDir is where the agent pins its eBPF objects.
func (l Layout) BpffsDir() string { return l.path("/sys/fs/bpf/msp-agent") }

// RunDir holds the handler's pidfiles (supervisor mode).
func (l Layout) RunDir() string { return l.path("/run/msp-handler") }

// BackupDir holds the previous agent binary during an upgrade.
func (l Layout) BackupDir() string { return filepath.Join(l.StateDir(), "handler-backup") }

// AggregateStatus is the agent's status document (agent.md §9).
func (l Layout) AggregateStatus() string { return filepath.Join(l.LogDir(), "status.json") }

// OSRelease is the os-release file the OS gate reads: MSP_ROOT's own when
// it has one (so tests can play another distribution), else the system's.
func (l Layout) OSRelease() string {
	if l.Root != "/" && l.Root != "" {
		if p := l.path("/etc/os-release"); fileExists(p) {
			return p
		}
	}
	return "/etc/os-release"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Endpoints are the metadata services' addresses in the agent's config.
type Endpoints struct {
	IMDS         string `json:"imds,omitempty"`
	WireServer   string `json:"wireServer,omitempty"`
	HostGAPlugin string `json:"hostGAPlugin,omitempty"`
}

// Options are the test mode's settings, from the environment.
type Options struct {
	TestMode  bool
	Layout    Layout
	Endpoints *Endpoints // MSP_ENDPOINTS
	Listen    string     // MSP_LISTEN
	Cgroup    string     // MSP_CGROUP
	// PollSeconds (MSP_POLL_SECONDS) is the agent's secure-channel poll
	// interval, so that tests and the demo see a host change within a
	// second instead of the default 15.
	PollSeconds int
	// MonitorSeconds (MSP_MONITOR_SECONDS) is the monitor's period.
	MonitorSeconds int
}

// OptionsFromEnv reads MSP_ROOT, MSP_ENDPOINTS, MSP_LISTEN, MSP_CGROUP,
// MSP_POLL_SECONDS and MSP_MONITOR_SECONDS.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{Layout: Layout{Root: "/"}}
	if root := getenv("MSP_ROOT"); root != "" {
		if !filepath.IsAbs(root) {
			return Options{}, fmt.Errorf("MSP_ROOT %q must be an absolute directory", root)
		}
		o.TestMode, o.Layout.Root = true, filepath.Clean(root)
	}
	if ep := getenv("MSP_ENDPOINTS"); ep != "" {
		var e Endpoints
		dec := json.NewDecoder(bytes.NewReader([]byte(ep)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return Options{}, fmt.Errorf(`MSP_ENDPOINTS: %v (want JSON like {"imds":"127.0.0.2:80","wireServer":"127.0.0.3:80","hostGAPlugin":"127.0.0.3:32526"})`, err)
		}
		for name, addr := range map[string]string{"imds": e.IMDS, "wireServer": e.WireServer, "hostGAPlugin": e.HostGAPlugin} {
			if addr == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return Options{}, fmt.Errorf("MSP_ENDPOINTS.%s: %q is not host:port", name, addr)
			}
		}
		o.Endpoints = &e
	}
	if l := getenv("MSP_LISTEN"); l != "" {
		host, _, err := net.SplitHostPort(l)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return Options{}, fmt.Errorf("MSP_LISTEN %q must be a loopback host:port", l)
		}
		o.Listen = l
	}
	if cg := getenv("MSP_CGROUP"); cg != "" {
		if !filepath.IsAbs(cg) {
			return Options{}, fmt.Errorf("MSP_CGROUP %q must be an absolute cgroup2 directory", cg)
		}
		o.Cgroup = cg
	}
	for name, dst := range map[string]*int{"MSP_POLL_SECONDS": &o.PollSeconds, "MSP_MONITOR_SECONDS": &o.MonitorSeconds} {
		p := getenv(name)
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 3600 {
			return Options{}, fmt.Errorf("%s %q must be a number of seconds from 1 to 3600", name, p)
		}
		*dst = n
	}
	if !o.TestMode && (o.Endpoints != nil || o.Listen != "" || o.Cgroup != "" || o.PollSeconds != 0 || o.MonitorSeconds != 0) {
		return Options{}, fmt.Errorf("MSP_ENDPOINTS, MSP_LISTEN, MSP_CGROUP, MSP_POLL_SECONDS and MSP_MONITOR_SECONDS need MSP_ROOT (test mode)")
	}
	return o, nil
}

// Config is the agent's configuration file as the handler writes it: the
// paths, the test mode's overrides and the extension's settings; every
// other field keeps the agent's default.
type Config struct {
	Listen      string          `json:"listen,omitempty"`
	StateDir    string          `json:"stateDir"`
	LogDir      string          `json:"logDir"`
	LogLevel    string          `json:"logLevel,omitempty"`
	Endpoints   *Endpoints      `json:"endpoints,omitempty"`
	Cgroup      string          `json:"cgroup,omitempty"`
	BpffsDir    string          `json:"bpffsDir"`
	PollSeconds int             `json:"pollIntervalSeconds,omitempty"`
	NetnsPolicy string          `json:"netnsPolicy,omitempty"`
	Settings    *ConfigSettings `json:"settings,omitempty"`
}

// ConfigSettings are the authorization items, as the administrator wrote
// them.
type ConfigSettings struct {
	IMDS       json.RawMessage `json:"imds,omitempty"`
	WireServer json.RawMessage `json:"wireServer,omitempty"`
}

// NewConfig assembles the configuration.
func NewConfig(o Options, logLevel, netnsPolicy string, imds, wireServer json.RawMessage) Config {
	c := Config{
		Listen: o.Listen, StateDir: o.Layout.StateDir(), LogDir: o.Layout.LogDir(),
		LogLevel: strings.ToLower(logLevel), Endpoints: o.Endpoints, Cgroup: o.Cgroup,
		BpffsDir: o.Layout.BpffsDir(), PollSeconds: o.PollSeconds, NetnsPolicy: netnsPolicy,
	}
	if imds != nil || wireServer != nil {
		c.Settings = &ConfigSettings{IMDS: imds, WireServer: wireServer}
	}
	return c
}

// Marshal renders the configuration file.
func (c Config) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
