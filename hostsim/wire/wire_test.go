package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

func read(s string, limit int64) (*Request, error) {
	br := bufio.NewReader(strings.NewReader(s))
	r, err := ReadHead(br)
	if err != nil {
		return nil, err
	}
	return r, r.ReadBody(br, limit)
}

// TestReaderKeepsWireDetailsAndRefusesBadFraming: values keep their
// surrounding white space, names their case, duplicates their order;
// framing errors name the reason and status.
func TestReaderKeepsWireDetailsAndRefusesBadFraming(t *testing.T) {
	ok, err := read("PUT /a%2Fb?x=1 HTTP/1.1\r\nHost:  h \r\nX-Dup: 1\r\nx-dup:\t2\t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nT: x\r\n\r\n", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Header{{"Host", "  h "}, {"X-Dup", " 1"}, {"x-dup", "\t2\t"}, {"Transfer-Encoding", " chunked"}}
	if ok.Method != "PUT" || ok.Target != "/a%2Fb?x=1" || len(ok.Header) != 4 || string(ok.Body) != "abcd" {
		t.Fatalf("got %+v", ok)
	}
	for i, h := range want {
		if ok.Header[i] != h {
			t.Errorf("header %d = %q; want %q", i, ok.Header[i], h)
		}
	}
	for _, tt := range []struct {
		name, in string
		status   int
		reason   string
	}{
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, ReasonBadFraming},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, ReasonBadFraming},
		{"cl and te", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, ReasonBadFraming},
		{"two cl", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400, ReasonBadFraming},
		{"te gzip", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, ReasonBadFraming},
		{"cl sign", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, ReasonBadFraming},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, ReasonBadHeader},
		{"folding", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400, ReasonBadHeader},
		{"control byte", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400, ReasonBadHeader},
		{"absolute target", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, ReasonBadRequestLine},
		{"http/2", "GET / HTTP/2\r\nHost: a\r\n\r\n", 400, ReasonBadRequestLine},
		{"closed in head", "GET / HTTP/1.1\r\nHost: a\r\n", 400, ReasonBadHeader},
		{"too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHead) + "\r\n\r\n", 431, ReasonHeaderTooLarge},
		{"body over limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413, ReasonBodyTooLarge},
		{"chunked over limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n", 413, ReasonBodyTooLarge},
		{"short body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", 400, ReasonBadBody},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, ReasonBadBody},
		{"chunk without crlf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", 400, ReasonBadBody},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := read(tt.in, 10)
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.status || e.Reason != tt.reason {
				t.Errorf("err %v; want %d %s", err, tt.status, tt.reason)
			}
		})
	}
	if _, err := ReadHead(bufio.NewReader(strings.NewReader(""))); err != io.EOF {
		t.Errorf("empty input: %v; want io.EOF", err)
	}
}

// FuzzReaderAgreesWithRawhttp: the reader never panics, and where both it
// and the agent's reader accept an input they agree on method, target,
// header names, trimmed values and body. (Two independent readers: a
// disagreement is a bug in one of them.)
func FuzzReaderAgreesWithRawhttp(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"PUT /x?a=1 HTTP/1.1\r\nHost: h\r\nX:  v \r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nab\r\n0\r\nT: 1\r\n\r\n",
		"GET / HTTP/1.0\nHost: h\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		mine, err1 := read(in, 1<<16)
		br := bufio.NewReader(strings.NewReader(in))
		theirs, err2 := rawhttp.ReadHead(br, rawhttp.Limits{})
		if err2 == nil {
			err2 = theirs.ReadBody(br, 1<<16)
		}
		if err1 != nil || err2 != nil {
			return
		}
		if mine.Method != theirs.Method || mine.Target != theirs.Target || len(mine.Header) != len(theirs.Headers) || string(mine.Body) != string(theirs.Body) {
			t.Fatalf("disagree: %+v vs %+v", mine, theirs)
		}
		for i, h := range mine.Header {
			if h.Name != theirs.Headers[i].Name || strings.Trim(h.Value, " \t") != theirs.Headers[i].Value {
				t.Fatalf("header %d: %q vs %q", i, h, theirs.Headers[i])
			}
		}
	})
}
