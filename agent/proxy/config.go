package proxy

import (
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/bpf"
)

// DefaultAddr is the listener address of agent.md §4.
const DefaultAddr = "127.0.0.1:3080"

// Config configures a Proxy. Only Records and Endpoints are required.
type Config struct {
	// Addr is the loopback address Listen binds; empty means DefaultAddr.
	Addr string
	// ListenerMark is the SO_MARK of the listening socket, which the
	// redirector's fail-open check requires (ebpf.md §6.6); 0 sets none.
	ListenerMark uint32
	// ExemptMark is the SO_MARK of every upstream socket, so that the
	// redirector lets it through (ebpf.md §6.5); 0 sets none.
	ExemptMark uint32
	// Records gives the kernel's record of a redirected connection by its
	// peer address and deletes it (redirect.Redirector.Take).
	Records Records
	// Endpoints names the service behind each original destination the
	// redirector targets. A record whose destination is not here is
	// answered 421: the proxy forwards only to a known metadata endpoint,
	// and only to the destination the caller connected to.
	Endpoints map[netip.AddrPort]hostproto.Endpoint
	// Identify turns a record into the caller; nil means RecordCaller.
	Identify func(bpf.Record) identity.Caller
	// Audit receives one entry per request; nil discards them.
	Audit Auditor
	// Provision serves GET /provision (agent.md §3.3) on any connection;
	// nil answers 404.
	Provision Hook
	// AggregatedStatus serves /gpa-aggregated-status (agent.md §9) to a
	// redirected root caller; nil answers 404.
	AggregatedStatus Hook
	// Now is the host clock for x-ms-azure-host-date; nil means time.Now.
	Now func() time.Time
	// Log receives operational messages; nil discards them. Keys,
	// signatures and tokens are never logged.
	Log logrus.FieldLogger
	// Limits are the timeouts and caps of agent.md §5.5; zero fields take
	// the defaults.
	Limits Limits
}

// Records is the consumer side of the redirector.
type Records interface {
	Take(peer netip.AddrPort) (bpf.Record, bool, error)
}

// Auditor receives one entry per request, after the response was sent
// (or refused); *audit.Log is one.
type Auditor interface {
	Record(e audit.Entry)
}

// Hook answers a request to one of the listener's own endpoints. caller
// is nil on a connection without a record.
type Hook func(req *rawhttp.Request, caller *identity.Caller) Response

// Response is a complete answer of a hook.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Limits are the timeouts and caps of agent.md §5.5. HeaderRead (once a
// request started but its head is not in yet) and BodyRead are exact; the
// waits on an idle client, on the upstream's response and on streamed
// bodies end after at least half and at most all of their limit (see
// deadlines).
type Limits struct {
	HeaderRead      time.Duration // client request head (10 s)
	BodyRead        time.Duration // client body of a signed request (30 s)
	Idle            time.Duration // client keep-alive idle (60 s)
	Dial            time.Duration // upstream dial (5 s)
	ResponseHeader  time.Duration // upstream response head (60 s)
	BodyIdle        time.Duration // streamed bodies, either way, between progress (60 s)
	MaxHeaderBytes  int           // request line and header section (64 KiB)
	MaxConns        int           // concurrent client connections (1024)
	MaxConnsPerUser int           // concurrent client connections of one uid (64)
	BindRetry       time.Duration // between tries of a listener address in use (1 s)
}

// DefaultLimits returns agent.md §5.5's defaults.
func DefaultLimits() Limits {
	return Limits{
		HeaderRead:      10 * time.Second,
		BodyRead:        30 * time.Second,
		Idle:            60 * time.Second,
		Dial:            5 * time.Second,
		ResponseHeader:  60 * time.Second,
		BodyIdle:        60 * time.Second,
		MaxHeaderBytes:  rawhttp.DefaultMaxHeaderBytes,
		MaxConns:        1024,
		MaxConnsPerUser: 64,
		BindRetry:       time.Second,
	}
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.HeaderRead, d.HeaderRead)
	set(&l.BodyRead, d.BodyRead)
	set(&l.Idle, d.Idle)
	set(&l.Dial, d.Dial)
	set(&l.ResponseHeader, d.ResponseHeader)
	set(&l.BodyIdle, d.BodyIdle)
	set(&l.BindRetry, d.BindRetry)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerUser <= 0 {
		l.MaxConnsPerUser = d.MaxConnsPerUser
	}
	return l
}
