package proxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

func TestNewAndListenErrors(t *testing.T) {
	ok := map[netip.AddrPort]hostproto.Endpoint{netip.MustParseAddrPort("127.0.0.169:80"): hostproto.IMDS}
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no records", Config{Endpoints: ok}, "Config.Records is nil"},
		{"no endpoints", Config{Records: fixedRecords{}}, "Config.Endpoints is empty"},
		{"bad endpoint", Config{Records: fixedRecords{}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{netip.MustParseAddrPort("127.0.0.169:80"): 9}}, "want imds, wireserver or hostga"},
		{"not loopback", Config{Addr: "0.0.0.0:3080", Records: fixedRecords{}, Endpoints: ok}, "want a loopback host:port"},
		{"not an address", Config{Addr: "localhost:3080", Records: fixedRecords{}, Endpoints: ok}, "want a loopback host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if err == nil {
				var ln interface{ Close() error }
				ln, err = p.Listen()
				if err == nil {
					ln.Close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got %v; want an error containing %q", err, tt.err)
			}
		})
	}
}

func TestRecordCaller(t *testing.T) {
	tests := []struct {
		name string
		rec  bpf.Record
		root bool
	}{
		{"kernel euid 0", bpf.Record{UID: 0, TaskInfo: true, EUID: 0}, true},
		{"kernel euid not 0", bpf.Record{UID: 0, TaskInfo: true, EUID: 1000}, false},
		{"real uid not 0", bpf.Record{UID: 1000, TaskInfo: true, EUID: 0}, false},
		{"no task info, task gone", bpf.Record{UID: 0, TID: 0}, false},
		{"no task info, comm differs", bpf.Record{UID: 0, TID: 1, Comm: "not-init-comm"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := RecordCaller(tt.rec); c.Root != tt.root || c.UserName != "" || c.ExePath != "" {
				t.Errorf("RecordCaller(%+v) = %+v; want Root %v and no /proc-derived names", tt.rec, c, tt.root)
			}
		})
	}
}

func TestHasToken(t *testing.T) {
	for v, want := range map[string]bool{"close": true, "Keep-Alive, Close": true, "closed": false, "": false, " close ,x": true} {
		if hasToken(v, "close") != want {
			t.Errorf("hasToken(%q, close) = %v", v, !want)
		}
	}
}

// TestListenRetriesAddressInUse: a busy address is retried, and the error
// names it once the tries are spent.
func TestListenRetriesAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := busy.Addr().String()
	p, err := New(Config{Addr: addr, Records: fixedRecords{}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{netip.MustParseAddrPort("127.0.0.169:80"): hostproto.IMDS},
		Limits: Limits{BindRetry: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Listen(); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Listen on a busy address = %v; want an error naming %s", err, addr)
	}
	// Freed during the retries: Listen succeeds.
	time.AfterFunc(50*time.Millisecond, func() { busy.Close() })
	ln, err := p.Listen()
	if err != nil {
		t.Fatalf("Listen after the address was freed: %v", err)
	}
	ln.Close()
}
