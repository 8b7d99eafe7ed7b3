package hostsim

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim/hostsig"
)

// Default listen addresses (host-protocol.md §1 and §11): loopback aliases
// standing in for 169.254.169.254:80 and 168.63.129.16:{80,32526}.
const (
	DefaultIMDSAddr       = "127.0.0.169:80"
	DefaultWireServerAddr = "127.0.0.168:80"
	DefaultHostGAAddr     = "127.0.0.168:32526"
	DefaultControlAddr    = "127.0.0.1:8089"
)

// Config configures an Emulator. Every address must be a loopback
// host:port (127.0.0.0/8 or ::1); port 0 picks a free port, see Addrs.
type Config struct {
	IMDSAddr       string
	WireServerAddr string
	HostGAAddr     string
	// ControlAddr is the control API; empty means no control listener
	// (in-process tests call the Emulator's methods directly).
	ControlAddr string
	// Initial is the start-up state, restored by Reset; nil means
	// DefaultState().
	Initial *State
	// Log receives operational logs; nil discards them. Key material and
	// full signatures are never logged.
	Log logrus.FieldLogger
	// VerifyLog, when set, receives every verification record as a JSON
	// line.
	VerifyLog io.Writer
	// Now is the local clock; nil means time.Now.
	Now func() time.Time
}

// Emulator is a running host emulator. All state lives behind mu; the
// zero value is not usable, call Start.
type Emulator struct {
	cfg     Config
	log     logrus.FieldLogger
	initial State

	listeners map[hostproto.Endpoint]net.Listener
	control   *http.Server
	ctrlLn    net.Listener
	conns     sync.WaitGroup
	connMu    sync.Mutex
	open      map[net.Conn]struct{}
	closing   bool
	closeOnce sync.Once
	done      chan struct{}

	// macEqual compares a presented MAC with the expected one; Start sets
	// hmac.Equal (constant time), tests may observe it.
	macEqual hostsig.Equal

	mu     sync.Mutex
	state  State
	keys   keyStore
	faults map[hostproto.Endpoint]*Fault
	recs   recordLog
}

// IsLoopback reports whether addr (host:port) names a loopback IP address.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func checkAddr(flag, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s %q: want host:port such as 127.0.0.169:80: %w", flag, addr, err)
	}
	if !IsLoopback(addr) {
		return fmt.Errorf("%s %q: not a loopback address; the emulator listens only on 127.0.0.0/8 or ::1 so that it never answers for the real host", flag, addr)
	}
	return nil
}

// Start validates the configuration, binds every listener and starts
// serving. On error nothing is left listening.
func Start(cfg Config) (*Emulator, error) {
	addrs := []struct {
		ep   hostproto.Endpoint
		flag string
		addr string
	}{
		{hostproto.IMDS, "imds address", cfg.IMDSAddr},
		{hostproto.WireServer, "wireserver address", cfg.WireServerAddr},
		{hostproto.HostGAPlugin, "hostga address", cfg.HostGAAddr},
	}
	for _, a := range addrs {
		if err := checkAddr(a.flag, a.addr); err != nil {
			return nil, err
		}
	}
	if cfg.ControlAddr != "" {
		if err := checkAddr("control address", cfg.ControlAddr); err != nil {
			return nil, err
		}
	}
	if cfg.Initial != nil {
		if err := cfg.Initial.validate(); err != nil {
			return nil, fmt.Errorf("initial state: %w", err)
		}
	}
	e := &Emulator{
		cfg:       cfg,
		log:       cfg.Log,
		listeners: make(map[hostproto.Endpoint]net.Listener),
		faults:    make(map[hostproto.Endpoint]*Fault),
		done:      make(chan struct{}),
		macEqual:  hmac.Equal,
	}
	if e.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		e.log = l
	}
	if e.cfg.Now == nil {
		e.cfg.Now = time.Now
	}
	e.initial = DefaultState()
	if cfg.Initial != nil {
		e.initial = cfg.Initial.clone()
	}
	e.state = e.initial.clone()
	e.keys = newKeyStore()
	e.recs = recordLog{w: cfg.VerifyLog}

	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			e.closeListeners()
			return nil, fmt.Errorf("%s %q: %w", a.flag, a.addr, err)
		}
		e.listeners[a.ep] = ln
	}
	if cfg.ControlAddr != "" {
		ln, err := net.Listen("tcp", cfg.ControlAddr)
		if err != nil {
			e.closeListeners()
			return nil, fmt.Errorf("control address %q: %w", cfg.ControlAddr, err)
		}
		e.ctrlLn = ln
		e.control = &http.Server{Handler: e.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
		go e.control.Serve(ln)
	}
	for ep, ln := range e.listeners {
		s := &endpointServer{e: e, ep: ep, ln: ln}
		go s.acceptLoop()
		e.log.WithFields(logrus.Fields{"endpoint": ep.String(), "addr": ln.Addr().String()}).Info("listening")
	}
	if e.ctrlLn != nil {
		e.log.WithFields(logrus.Fields{"endpoint": "control", "addr": e.ctrlLn.Addr().String()}).Info("listening")
	}
	return e, nil
}

// Addrs holds the bound addresses.
type Addrs struct {
	IMDS       string `json:"imds"`
	WireServer string `json:"wireserver"`
	HostGA     string `json:"hostga"`
	Control    string `json:"control,omitempty"`
}

// Addrs returns the addresses actually bound (useful with port 0).
func (e *Emulator) Addrs() Addrs {
	a := Addrs{
		IMDS:       e.listeners[hostproto.IMDS].Addr().String(),
		WireServer: e.listeners[hostproto.WireServer].Addr().String(),
		HostGA:     e.listeners[hostproto.HostGAPlugin].Addr().String(),
	}
	if e.ctrlLn != nil {
		a.Control = e.ctrlLn.Addr().String()
	}
	return a
}

// Close stops every listener and waits for open connections to finish
// (they are closed, not drained).
func (e *Emulator) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.done)
		e.closeListeners()
		e.closeConns()
		if e.control != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = e.control.Shutdown(ctx)
			cancel()
		}
		e.conns.Wait()
	})
	return err
}

func (e *Emulator) closeListeners() {
	for _, ln := range e.listeners {
		ln.Close()
	}
	if e.ctrlLn != nil {
		e.ctrlLn.Close()
	}
}

// State returns a copy of the current state.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state.clone()
}

// ErrBadPatch wraps every rejected state patch.
var ErrBadPatch = errors.New("bad state patch")

// Apply merges a patch into the state. A change of keyIncarnationId starts
// a rotation: the status reports keyGuid null until the guest has acquired
// and attested a new key; the old key stays valid until then.
func (e *Emulator) Apply(p *Patch) (State, error) {
	if err := p.validate(); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.apply(p) {
		e.keys.rotate()
		e.log.WithField("keyIncarnationId", e.state.KeyIncarnationID).Info("key incarnation changed: status reports keyGuid null until a new key is attested")
	}
	if p.NextKey != nil {
		nk := *p.NextKey
		e.keys.next = &nk
	}
	return e.state.clone(), nil
}

// Reset restores the start-up state and forgets keys, faults and
// verification records.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = e.initial.clone()
	e.keys = newKeyStore()
	clear(e.faults)
	e.recs.reset()
	e.log.Info("reset to the start-up state")
}

// hostNow is the host clock: local clock plus the configured offset.
// Caller holds mu.
func (e *Emulator) hostNow() time.Time {
	return e.cfg.Now().Add(time.Duration(e.state.ClockOffsetSeconds) * time.Second).UTC()
}
