package proxy

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

// panicHook counts logged panics.
type panicHook struct{ n atomic.Int32 }

func (h *panicHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }
func (h *panicHook) Fire(e *logrus.Entry) error {
	if _, ok := e.Data["panic"]; ok {
		h.n.Add(1)
	}
	return nil
}

// FuzzProxyConnection sends arbitrary bytes to an in-process proxy (the
// record is given, root to HostGAPlugin so that exempt streaming is
// reachable, against an upstream that answers every request): no
// connection may panic, and the proxy keeps serving.
func FuzzProxyConnection(f *testing.F) {
	for _, s := range []string{
		"GET /status HTTP/1.1\r\nHost: h\r\n\r\n",
		"PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3;x\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /provision HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /gpa-aggregated-status HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
	} {
		f.Add(s)
	}
	dest := fixedUpstream(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	addr, hook := fuzzProxy(f, dest, hostproto.HostGAPlugin,
		Limits{HeaderRead: time.Second, BodyRead: time.Second, Idle: time.Second, ResponseHeader: time.Second, BodyIdle: time.Second})
	f.Fuzz(func(t *testing.T, in string) {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, in)
		c.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(c)
		if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 ") {
			t.Fatalf("answer %q does not start with a status line", out)
		}
		if n := hook.n.Load(); n > 0 {
			t.Fatalf("%d connections panicked", n)
		}
	})
}

// fuzzProxy runs an in-process proxy for a fuzz target until it ends: the
// caller record is root's to dest, which is endpoint ep, in enforce mode
// with a test key. It returns the listener's address and a hook that
// counts logged panics.
func fuzzProxy(f *testing.F, dest netip.AddrPort, ep hostproto.Endpoint, lim Limits) (string, *panicHook) {
	hook := &panicHook{}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.AddHook(hook)
	px, err := New(Config{Addr: "127.0.0.1:0", Records: fixedRecords{bpf.Record{UID: 0, TaskInfo: true, Dest: dest}},
		Endpoints: map[netip.AddrPort]hostproto.Endpoint{dest: ep}, Log: lg, Limits: lim})
	if err != nil {
		f.Fatal(err)
	}
	px.SetPolicy(ep, authz.Unrestricted(hostproto.ModeEnforce))
	px.SetSigner(testSigner(f))
	ln, err := px.Listen()
	if err != nil {
		f.Fatal(err)
	}
	go px.Serve(ln)
	f.Cleanup(func() { px.Close() })
	return ln.Addr().String(), hook
}
