package config

import (
	"crypto/sha256"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
)

// DefaultPath is the configuration file the daemon reads without --config.
const DefaultPath = "/etc/msp-agent/config.json"

// NetnsPolicy is what the redirector does with callers in other network
// namespaces (ebpf.md §6.7).
type NetnsPolicy string

// The two policies; pass is the default.
const (
	NetnsPass NetnsPolicy = "pass" // leave their connections unchanged
	NetnsDeny NetnsPolicy = "deny" // refuse their connects (EPERM)
)

// Config is the agent's configuration with every default applied. A
// loaded Config is never modified; a reload builds a new one.
type Config struct {
	// Listen is the proxy listener, loopback only; default 127.0.0.1:3080.
	Listen netip.AddrPort
	// StateDir holds keys/ and rules/; default /var/lib/msp-agent.
	StateDir string
	// LogDir holds the logs and status.json; default /var/log/msp-agent.
	LogDir string
	// LogLevel defaults to info.
	LogLevel logrus.Level
	// Endpoints are the metadata services' addresses.
	Endpoints Endpoints
	// Cgroup is the cgroup2 directory to attach to; "" means the
	// discovered cgroup2 root.
	Cgroup string
	// BPFFSDir is where links and maps are pinned; default
	// /sys/fs/bpf/msp-agent.
	BPFFSDir string
	// PollInterval is the secure-channel status poll interval
	// (pollIntervalSeconds); default 15 s.
	PollInterval time.Duration
	// NetnsPolicy defaults to pass.
	NetnsPolicy NetnsPolicy
	// Limits are the proxy's timeouts and connection caps (agent.md §5.5).
	Limits Limits
	// Settings are the extension's authorization items.
	Settings Settings

	// Path is the file the configuration was read from; "" for the
	// defaults of a missing default file.
	Path string
	// Hash is the SHA-256 of the file content (of nothing for defaults).
	Hash [sha256.Size]byte
}

// Endpoints are the metadata services' addresses (tests point them at
// loopback addresses).
type Endpoints struct {
	IMDS         netip.AddrPort // default 169.254.169.254:80
	WireServer   netip.AddrPort // default 168.63.129.16:80
	HostGAPlugin netip.AddrPort // default 168.63.129.16:32526
}

// Of returns an endpoint's address.
func (e Endpoints) Of(ep hostproto.Endpoint) netip.AddrPort {
	switch ep {
	case hostproto.IMDS:
		return e.IMDS
	case hostproto.WireServer:
		return e.WireServer
	case hostproto.HostGAPlugin:
		return e.HostGAPlugin
	}
	return netip.AddrPort{}
}

// Limits are the proxy's limits (agent.md §5.5); JSON names end in
// Seconds for the durations.
type Limits struct {
	HeaderRead           time.Duration // headerReadSeconds, default 10
	BodyRead             time.Duration // bodyReadSeconds, default 30
	Idle                 time.Duration // idleSeconds, default 60
	Dial                 time.Duration // dialSeconds, default 5
	ResponseHeader       time.Duration // responseHeaderSeconds, default 60
	BodyIdle             time.Duration // bodyIdleSeconds, default 60
	MaxConnections       int           // default 1024
	MaxConnectionsPerUID int           // maxConnectionsPerUid, default 64
}

// Settings are the extension's authorization items, read with
// rulefile.ParseSettingsItem: a nil item is absent, an item with an empty
// Mode follows the host's mode (authz.EffectiveModes). HostGAPlugin
// always follows WireServer.
type Settings struct {
	IMDS       *hostproto.AuthorizationItem
	WireServer *hostproto.AuthorizationItem
}

// Item returns the settings item of an endpoint (WireServer's for
// HostGAPlugin).
func (s Settings) Item(ep hostproto.Endpoint) *hostproto.AuthorizationItem {
	switch ep {
	case hostproto.IMDS:
		return s.IMDS
	case hostproto.WireServer, hostproto.HostGAPlugin:
		return s.WireServer
	}
	return nil
}

// KeysDir is <stateDir>/keys.
func (c *Config) KeysDir() string { return filepath.Join(c.StateDir, "keys") }

// RulesDir is <stateDir>/rules, the local rule files' directory.
func (c *Config) RulesDir() string { return filepath.Join(c.StateDir, "rules") }

// Default returns the configuration of a missing default file.
func Default() *Config {
	return &Config{
		Listen:   netip.MustParseAddrPort("127.0.0.1:3080"),
		StateDir: "/var/lib/msp-agent",
		LogDir:   "/var/log/msp-agent",
		LogLevel: logrus.InfoLevel,
		Endpoints: Endpoints{
			IMDS:         netip.MustParseAddrPort("169.254.169.254:80"),
			WireServer:   netip.MustParseAddrPort("168.63.129.16:80"),
			HostGAPlugin: netip.MustParseAddrPort("168.63.129.16:32526"),
		},
		BPFFSDir:     "/sys/fs/bpf/msp-agent",
		PollInterval: 15 * time.Second,
		NetnsPolicy:  NetnsPass,
		Limits: Limits{
			HeaderRead:           10 * time.Second,
			BodyRead:             30 * time.Second,
			Idle:                 60 * time.Second,
			Dial:                 5 * time.Second,
			ResponseHeader:       60 * time.Second,
			BodyIdle:             60 * time.Second,
			MaxConnections:       1024,
			MaxConnectionsPerUID: 64,
		},
		Hash: sha256.Sum256(nil),
	}
}
