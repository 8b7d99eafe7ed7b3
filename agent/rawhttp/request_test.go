package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func read(t *testing.T, raw string, limit int64) (*Request, error) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	req, err := ReadHead(br, Limits{})
	if err != nil {
		return nil, err
	}
	return req, req.ReadBody(br, limit)
}

func TestReadRequestKeepsWireDetails(t *testing.T) {
	raw := "GET /a%2Fb/%3Fx?B=1&a=2 HTTP/1.1\r\nHost: h\r\nX-Dup: one\r\nx-dup:\t two \r\nEmpty:\r\n\r\n"
	req, err := read(t, raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "GET" || req.Target != "/a%2Fb/%3Fx?B=1&a=2" || req.Proto != "HTTP/1.1" {
		t.Fatalf("request line = %q %q %q", req.Method, req.Target, req.Proto)
	}
	want := []Header{{"Host", "h"}, {"X-Dup", "one"}, {"x-dup", "two"}, {"Empty", ""}}
	if len(req.Headers) != len(want) {
		t.Fatalf("headers = %q; want %q", req.Headers, want)
	}
	for i := range want {
		if req.Headers[i] != want[i] {
			t.Errorf("header %d = %q; want %q", i, req.Headers[i], want[i])
		}
	}
	if v, _ := req.Get("X-DUP"); v != "two" {
		t.Errorf("Get(X-DUP) = %q; want the last copy", v)
	}
}

func TestReadRequestRejects(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		status int
		reason string
		msg    string
	}{
		{"no version", "GET /\r\n\r\n", 400, ReasonBadRequestLine, "request line"},
		{"absolute form", "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, ReasonBadRequestLine, "origin form"},
		{"http2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400, ReasonBadRequestLine, "protocol"},
		{"bad method", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ReasonBadRequestLine, "method"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ReasonBadRequestLine, "request line"},
		{"utf8 in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, ReasonBadRequestLine, "byte 0xc3"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, ReasonBadFraming, "0 Host headers"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, ReasonBadFraming, "2 Host headers"},
		{"two content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, ReasonBadFraming, "more than one Content-Length"},
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, ReasonBadFraming, "both Content-Length and Transfer-Encoding"},
		{"te gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, ReasonBadFraming, "only chunked"},
		{"two te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, ReasonBadFraming, "only chunked"},
		{"te in http/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ReasonBadFraming, "HTTP/1.0"},
		{"cl sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400, ReasonBadFraming, "decimal"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, ReasonBadHeader, "not a token"},
		{"folding", "GET / HTTP/1.1\r\nHost: a\r\n continued\r\n\r\n", 400, ReasonBadHeader, "folding"},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, ReasonBadHeader, "missing ':'"},
		{"non-ascii value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 400, ReasonBadHeader, "byte 0xc3"},
		{"control in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400, ReasonBadHeader, "byte 0x01"},
		{"eof in headers", "GET / HTTP/1.1\r\nHost: a\r\n", 400, ReasonBadHeader, "closed inside"},
		{"short body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", 400, ReasonBadBody, "fewer than 5"},
		{"body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", 413, ReasonBodyTooLarge, "exceeds 10"},
		{"chunk too large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", 413, ReasonBodyTooLarge, "exceeds 10"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, ReasonBadBody, "hexadecimal"},
		{"chunk without crlf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400, ReasonBadBody, "CRLF"},
		{"truncated chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", 400, ReasonBadBody, "closed inside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := read(t, tt.raw, 10)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v; want *Error", err)
			}
			if e.Status != tt.status || e.Reason != tt.reason || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("got %d %s %q; want %d %s containing %q", e.Status, e.Reason, e.Msg, tt.status, tt.reason, tt.msg)
			}
			if tt.status == 413 && !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("errors.Is(err, ErrBodyTooLarge) = false")
			}
		})
	}
}

func TestHeaderSectionLimit(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n"
	_, err := ReadHead(bufio.NewReaderSize(strings.NewReader(raw), 16), Limits{MaxHeaderBytes: 100})
	var e *Error
	if !errors.As(err, &e) || e.Status != 431 {
		t.Fatalf("got %v; want 431", err)
	}
}

func TestCleanEOF(t *testing.T) {
	if _, err := ReadHead(bufio.NewReader(strings.NewReader("")), Limits{}); err != io.EOF {
		t.Fatalf("got %v; want io.EOF", err)
	}
}

func TestChunkedBodyAndDechunk(t *testing.T) {
	raw := "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nX-After: 1\r\n\r\n" +
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: dropped\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	req, err := ReadHead(br, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !req.Chunked() {
		t.Fatal("Chunked() = false")
	}
	if err := req.ReadBody(br, 100); err != nil {
		t.Fatal(err)
	}
	if string(req.Body) != "hello world" {
		t.Fatalf("body = %q", req.Body)
	}
	req.Dechunk()
	var out bytes.Buffer
	if _, err := req.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	want := "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nX-After: 1\r\n\r\nhello world"
	if out.String() != want {
		t.Fatalf("written:\n%q\nwant\n%q", out.String(), want)
	}
	next, err := ReadHead(br, Limits{})
	if err != nil || next.Target != "/next" {
		t.Fatalf("next request: %v %v", next, err)
	}
}

func TestLFOnlyLines(t *testing.T) {
	req, err := read(t, "GET / HTTP/1.0\nHost: a\n\n", 0)
	if err != nil || req.Proto != "HTTP/1.0" {
		t.Fatalf("got %v, %v", req, err)
	}
}
