package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/bpf"
)

// Proxy is the signing proxy. Build it with New, bind with Listen, run
// Serve; the setters may be called at any time from any goroutine.
type Proxy struct {
	cfg      Config
	lim      Limits
	log      logrus.FieldLogger
	identify func(bpf.Record) identity.Caller
	now      func() time.Time
	ids      idSource

	policies [len(hostproto.Endpoints) + 1]atomic.Pointer[authz.Snapshot]
	signer   atomic.Pointer[sign.Signer]
	modes    atomic.Pointer[hostproto.Modes]

	conns connCaps
	dates atomic.Pointer[dateCache]

	mu     sync.Mutex
	ln     net.Listener
	open   map[*clientConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New checks the configuration and returns a Proxy that denies every
// request until SetPolicy gives an endpoint a snapshot.
func New(cfg Config) (*Proxy, error) {
	if cfg.Records == nil {
		return nil, errors.New("proxy: Config.Records is nil: pass the redirector (its Take gives each connection's caller)")
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("proxy: Config.Endpoints is empty: map each redirected destination to its endpoint")
	}
	for a, ep := range cfg.Endpoints {
		if ep < hostproto.IMDS || ep > hostproto.HostGAPlugin {
			return nil, fmt.Errorf("proxy: Config.Endpoints[%s] = %s: want imds, wireserver or hostga", a, ep)
		}
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	p := &Proxy{cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Log, identify: cfg.Identify, now: cfg.Now, open: make(map[*clientConn]struct{})}
	if p.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		p.log = l
	}
	if p.identify == nil {
		p.identify = RecordCaller
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.conns.perUID = make(map[uint32]int)
	p.ids.init()
	p.modes.Store(&hostproto.Modes{})
	return p, nil
}

// SetPolicy makes s the snapshot that authorizes new requests to ep;
// requests already authorized keep the one they started with. nil denies
// everything (default-deny).
func (p *Proxy) SetPolicy(ep hostproto.Endpoint, s *authz.Snapshot) {
	if int(ep) < len(p.policies) {
		p.policies[ep].Store(s)
	}
}

// Policy returns the current snapshot of ep.
func (p *Proxy) Policy(ep hostproto.Endpoint) *authz.Snapshot {
	if int(ep) < len(p.policies) {
		return p.policies[ep].Load()
	}
	return nil
}

// SetSigner makes s the key that signs new requests; nil means no key is
// latched (agent.md §5.6).
func (p *Proxy) SetSigner(s *sign.Signer) { p.signer.Store(s) }

// SetHostModes records the host's mode of each endpoint: without a key a
// request to an endpoint the host enforces is answered 503 no-key, others
// are forwarded unsigned.
func (p *Proxy) SetHostModes(m hostproto.Modes) { p.modes.Store(&m) }

// Listen binds the configured loopback address with the listener mark. An
// address in use is retried 5 times BindRetry apart, then once more
// (agent.md §4); the error then names the address.
func (p *Proxy) Listen() (net.Listener, error) {
	ap, err := netip.ParseAddrPort(p.cfg.Addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("proxy address %q: want a loopback host:port such as 127.0.0.1:3080", p.cfg.Addr)
	}
	lc := net.ListenConfig{Control: markControl(p.cfg.ListenerMark)}
	for try := 0; ; try++ {
		ln, err := lc.Listen(context.Background(), "tcp4", p.cfg.Addr)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try == bindRetries {
			return nil, fmt.Errorf("proxy listen on %s: %w", p.cfg.Addr, err)
		}
		p.log.WithError(err).Warn("proxy address in use; retrying")
		time.Sleep(p.lim.BindRetry)
	}
}

// bindRetries is GPA's count of retries of a listener address in use.
const bindRetries = 6

// markControl sets SO_MARK on a socket before bind or connect.
func markControl(mark uint32) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		})
		if serr != nil {
			return fmt.Errorf("set SO_MARK %#x (needs CAP_NET_ADMIN): %w", mark, serr)
		}
		return err
	}
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return nil
	}
	p.ln = ln
	p.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.WithError(err).Warn("accept failed; retrying")
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy accept: %w", err)
		}
		backoff = 0
		cc := p.newClientConn(c.(*net.TCPConn))
		if !p.track(cc) {
			c.Close()
			return nil
		}
		go cc.serve()
	}
}

func (p *Proxy) track(cc *clientConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[cc] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrack(cc *clientConn) {
	p.mu.Lock()
	delete(p.open, cc)
	p.mu.Unlock()
	p.wg.Done()
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	for cc := range p.open {
		cc.c.Close()
		if uc := cc.upConn.Load(); uc != nil {
			uc.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// Stats are the proxy's live counters.
type Stats struct {
	Conns int // open client connections
}

// Stats returns the live counters.
func (p *Proxy) Stats() Stats {
	p.conns.mu.Lock()
	defer p.conns.mu.Unlock()
	return Stats{Conns: p.conns.total}
}

// connCaps counts client connections, in total and per uid, and the
// connections over a cap that wait for their head to be refused.
type connCaps struct {
	mu       sync.Mutex
	total    int
	perUID   map[uint32]int
	refusing int
}

// overCapHeadRead bounds the wait for the request head of a connection
// over a cap (the header-read timeout when shorter).
const overCapHeadRead = time.Second

// refuse counts a connection over a cap that waits for its head to be
// answered 503; false means as many wait as the total cap, and the
// connection is closed at once.
func (c *connCaps) refuse(lim Limits) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refusing >= lim.MaxConns {
		return false
	}
	c.refusing++
	return true
}

func (c *connCaps) refused() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refusing--
}

// acquire counts a connection of uid; false means a cap is reached (and
// nothing was counted). The last rootReserve connections of the total are
// root's: unprivileged users, each within its own cap, can together fill
// the rest (slowloris from 17 users fills 1024) but cannot lock the guest
// agent out of WireServer and HostGAPlugin (docs/reliability.md).
func (c *connCaps) acquire(uid uint32, hasUID bool, lim Limits) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := lim.MaxConns
	if !hasUID || uid != 0 {
		total -= rootReserve(lim)
	}
	if c.total >= total || hasUID && c.perUID[uid] >= lim.MaxConnsPerUser {
		return false
	}
	c.total++
	if hasUID {
		c.perUID[uid]++
	}
	return true
}

// rootReserve is one user's cap, at most half the total.
func rootReserve(lim Limits) int { return min(lim.MaxConnsPerUser, lim.MaxConns/2) }

func (c *connCaps) release(uid uint32, hasUID bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if hasUID {
		if c.perUID[uid]--; c.perUID[uid] <= 0 {
			delete(c.perUID, uid)
		}
	}
}

// idSource makes correlation ids: a random prefix per process and a
// counter, 16 hex digits, without allocation beyond the string.
type idSource struct {
	prefix uint32
	n      atomic.Uint64
}

func (s *idSource) init() {
	var b [4]byte
	if _, err := io.ReadFull(randReader, b[:]); err == nil {
		s.prefix = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
}

func (s *idSource) next() string {
	const hex = "0123456789abcdef"
	v := uint64(s.prefix)<<32 | s.n.Add(1)&0xffffffff
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hex[v&15]
		v >>= 4
	}
	return string(b[:])
}

// Addr returns the address Serve accepts on, or "" before Serve.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// dateCache is the date header of one second of the host clock.
type dateCache struct {
	sec  int64
	text string
}

// date returns x-ms-azure-host-date for now, formatted once a second.
func (p *Proxy) date() string {
	now := p.now()
	if d := p.dates.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateCache{sec: now.Unix(), text: now.UTC().Format(hostproto.DateLayout)}
	p.dates.Store(d)
	return d.text
}
