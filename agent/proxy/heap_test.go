package proxy

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

// fixedRecords gives every connection the same record.
type fixedRecords struct{ rec bpf.Record }

func (f fixedRecords) Take(netip.AddrPort) (bpf.Record, bool, error) { return f.rec, true, nil }

// TestDeclaredLengthThroughProxy is issue 15 item 2 through the proxy: a
// 63-byte PUT /vmAgentLog head declaring 99999999 bytes, from root to
// HostGAPlugin (exempt, streamed) and to IMDS (signed, refused 413), grows
// the heap by less than 1 MB. No eBPF: the record is given.
func TestDeclaredLengthThroughProxy(t *testing.T) {
	up, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	heads := make(chan string, 4)
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				heads <- line
				io.Copy(io.Discard, c)
			}()
		}
	}()
	dest := up.Addr().(*net.TCPAddr).AddrPort()
	head := "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n"
	if len(head) != 63 {
		t.Fatalf("head is %d bytes; the issue's is 63", len(head))
	}
	for _, ep := range []hostproto.Endpoint{hostproto.HostGAPlugin, hostproto.IMDS} {
		t.Run(ep.String(), func(t *testing.T) {
			rec := bpf.Record{UID: 0, TaskInfo: true, EUID: 0, TGID: 1, TID: 1, Dest: dest}
			px, err := New(Config{Addr: "127.0.0.1:0", Records: fixedRecords{rec}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{dest: ep}})
			if err != nil {
				t.Fatal(err)
			}
			px.SetPolicy(ep, authz.Unrestricted(hostproto.ModeEnforce))
			ln, err := px.Listen()
			if err != nil {
				t.Fatal(err)
			}
			go px.Serve(ln)
			defer px.Close()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, head+"some body bytes")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if ep == hostproto.IMDS {
				b := make([]byte, 64)
				n, _ := c.Read(b)
				if !strings.HasPrefix(string(b[:n]), "HTTP/1.1 413 ") {
					t.Errorf("signed request: got %q; want 413", b[:n])
				}
			} else {
				select {
				case h := <-heads:
					if h != "PUT /vmAgentLog HTTP/1.1\r\n" {
						t.Errorf("upstream got %q", h)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the exempt head did not reach the upstream")
				}
			}
			runtime.ReadMemStats(&after)
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
				t.Errorf("heap grew by %d bytes; want under 1 MB", grew)
			}
		})
	}
}
