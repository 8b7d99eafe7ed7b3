package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadRequest checks that the reader never panics, that every error is
// an *Error or io.EOF, and that a request it accepts survives a round trip
// through WriteTo unchanged.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		req, err := ReadHead(br, Limits{MaxHeaderBytes: 4096})
		if err == nil {
			err = req.ReadBody(br, 1<<16)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && err != io.EOF {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		req.Dechunk()
		var out bytes.Buffer
		if _, err := req.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		br2 := bufio.NewReader(bytes.NewReader(out.Bytes()))
		again, err := ReadHead(br2, Limits{MaxHeaderBytes: 1 << 20})
		if err != nil {
			t.Fatalf("re-reading the written request: %v\n%q", err, out.Bytes())
		}
		if err := again.ReadBody(br2, 1<<16); err != nil {
			t.Fatalf("re-reading the written body: %v", err)
		}
		if again.Method != req.Method || again.Target != req.Target || len(again.Headers) != len(req.Headers) || !bytes.Equal(again.Body, req.Body) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
		for i := range req.Headers {
			if again.Headers[i] != req.Headers[i] {
				t.Fatalf("header %d: %q != %q", i, again.Headers[i], req.Headers[i])
			}
		}
	})
}
