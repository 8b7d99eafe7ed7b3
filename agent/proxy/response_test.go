package proxy

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// FuzzReadResponseHead: the upstream response reader never panics, and a
// head it accepts ends with the marker and the empty line.
func FuzzReadResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, out, err := readResponseHead(bufio.NewReaderSize(strings.NewReader(s), 4096), nil, 64<<10)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("error %v with %d bytes of output", err, len(out))
			}
			return
		}
		if h.status < 100 || h.status > 999 || !strings.HasSuffix(string(out), "x-ms-azure-host-authorization: value\r\n\r\n") && !strings.HasSuffix(string(out), "x-ms-azure-host-authorization: value\r\n\n") {
			t.Fatalf("accepted head %+v %q", h, out)
		}
	})
}

func TestReadResponseHead(t *testing.T) {
	tests := []struct {
		in      string
		status  int
		length  int64
		chunked bool
		close   bool
		err     bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 5, false, false, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", 200, -1, true, true, false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, 0, false, true, false},
		{"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", 200, 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 200, -1, false, true, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, 0, false, false, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 200, 1, false, false, false},
		{"HTTP/1.1 abc OK\r\n\r\n", 0, 0, false, false, true},
		{"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 0, 0, false, false, true},
		{"", 0, 0, false, false, true},
	}
	for _, tt := range tests {
		h, _, err := readResponseHead(bufio.NewReader(strings.NewReader(tt.in)), nil, 64<<10)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v; want error %v", tt.in, err, tt.err)
			continue
		}
		if !tt.err && (h.status != tt.status || h.length != tt.length || h.chunked != tt.chunked || h.close != tt.close) {
			t.Errorf("%q: %+v; want status %d length %d chunked %v close %v", tt.in, h, tt.status, tt.length, tt.chunked, tt.close)
		}
	}
}

// TestReadmeListsEveryReason: the README's table has every code the proxy
// sends, with its status.
func TestReadmeListsEveryReason(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Reasons {
		row := fmt.Sprintf("| `%s` | %d |", r.Code, r.Status)
		if !strings.Contains(string(b), row) {
			t.Errorf("README has no row %q", row)
		}
	}
}
