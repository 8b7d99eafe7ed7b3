package loadgen

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// server answers every request on a connection with the responses in
// turn (cycling).
func server(t *testing.T, responses ...string) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					for { // the request head
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if l == "\r\n" {
							break
						}
					}
					io.WriteString(c, responses[i%len(responses)])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

const req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"

func TestWorkloads(t *testing.T) {
	addr := server(t,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n")
	seq, err := Sequential(addr, []byte(req), 30)
	if err != nil || seq.Requests != 30 || seq.Errors != 0 || len(seq.Latencies) != 30 || seq.Percentile(0) > seq.Percentile(99) {
		t.Errorf("Sequential = %+v, %v; want 30 sorted latencies", seq, err)
	}
	nc, err := NewConnEach(addr, []byte(req), 5)
	if err != nil || nc.Requests != 5 {
		t.Errorf("NewConnEach = %+v, %v", nc, err)
	}
	cc, err := Concurrent(addr, []byte(req), 4, 100*time.Millisecond)
	if err != nil || cc.Requests == 0 || cc.Errors != 0 || cc.PerSecond() <= 0 ||
		int64(len(cc.Latencies)) != cc.Requests || cc.Percentile(0) > cc.Percentile(99) {
		t.Errorf("Concurrent = %d requests, %d errors, %d latencies, %v; want one sorted latency per request", cc.Requests, cc.Errors, len(cc.Latencies), err)
	}
	release, ready := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() { done <- Hold(addr, []byte(req), 3, release, ready) }()
	<-ready
	close(release)
	if err := <-done; err != nil {
		t.Errorf("Hold: %v", err)
	}
}

func TestReadResponseErrors(t *testing.T) {
	for _, in := range []string{"", "HTTP/1.1 2", "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"} {
		if _, err := ReadResponse(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
