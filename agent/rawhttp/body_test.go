package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestDeclaredLengthAllocatesNothing is issue 15 item 2: a 63-byte head
// declaring a 99999999-byte body (or chunk) must not allocate for it
// before the bytes arrive.
func TestDeclaredLengthAllocatesNothing(t *testing.T) {
	tests := []struct{ name, raw string }{
		{"content-length", "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n"},
		{"chunk size", "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5f5e0ff\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "content-length" && len(tt.raw) != 63 {
				t.Fatalf("head is %d bytes; the issue's is 63", len(tt.raw))
			}
			br := bufio.NewReader(strings.NewReader(tt.raw + "abc"))
			req, err := ReadHead(br, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err = req.ReadBody(br, 100_000_000)
			runtime.ReadMemStats(&after)
			if !errors.As(err, new(*Error)) {
				t.Fatalf("ReadBody = %v; want a short-body *Error", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes for 3 body bytes; want under 1 MB", grew)
			}
		})
	}
}

func TestReadBodyReusesBuffer(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"))
	req, err := ReadHead(br, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	lent := make([]byte, 0, 64)
	req.Body = lent
	if err := req.ReadBody(br, 100); err != nil {
		t.Fatal(err)
	}
	if string(req.Body) != "hello" || &req.Body[0] != &lent[:1][0] {
		t.Errorf("body %q; want hello in the lent buffer", req.Body)
	}
}

func TestStreamBody(t *testing.T) {
	big := strings.Repeat("x", 70000)
	tests := []struct {
		name, raw, want string
		limit           int64
		status          int // of the error; 0 = none
	}{
		{"content-length", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcNEXT", "abc", 10, 0},
		{"large content-length", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n" + big, big, 1 << 20, 0},
		{"no body", "PUT / HTTP/1.1\r\nHost: h\r\n\r\nNEXT", "", 10, 0},
		{"chunked, re-framed without extensions or trailers", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n03;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\nNEXT", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 10, 0},
		{"content-length over the limit", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", "", 10, 413},
		{"chunks over the limit", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n", "6\r\nabcdef\r\n", 10, 413},
		{"short", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab", "ab", 10, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			req, err := ReadHead(br, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := req.StreamBody(&out, br, tt.limit, StreamOptions{})
			var e *Error
			switch {
			case tt.status == 0 && err != nil:
				t.Fatalf("StreamBody: %v", err)
			case tt.status != 0 && (!errors.As(err, &e) || e.Status != tt.status):
				t.Fatalf("StreamBody = %v; want status %d", err, tt.status)
			}
			if out.String() != tt.want || n != int64(out.Len()) {
				t.Errorf("wrote %d: %q; want %q", n, clip(out.String()), clip(tt.want))
			}
			if tt.status == 0 {
				if rest, _ := io.ReadAll(br); len(rest) > 0 && string(rest) != "NEXT" {
					t.Errorf("left %q on the reader; want the next request untouched", rest)
				}
			}
		})
	}
}

func TestStreamBodyWriteError(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"))
	req, _ := ReadHead(br, Limits{})
	_, err := req.StreamBody(failWriter{}, br, 10, StreamOptions{})
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("got %v; want a *WriteError", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestChunkJunkCapped: extensions and trailers count against one budget
// per request, not per line.
func TestChunkJunkCapped(t *testing.T) {
	var raw strings.Builder
	raw.WriteString("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
	ext := ";" + strings.Repeat("e", 1000)
	for i := 0; i < 20; i++ {
		raw.WriteString("1" + ext + "\r\nx\r\n")
	}
	raw.WriteString("0\r\n\r\n")
	_, err := read(t, raw.String(), 1<<20)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonBadBody || !strings.Contains(e.Msg, "extensions and trailers") {
		t.Fatalf("got %v; want bad-body for too many extension bytes", err)
	}
	// A few short extensions are fine.
	req, err := read(t, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\nT: v\r\n\r\n", 10)
	if err != nil || string(req.Body) != "x" {
		t.Fatalf("got %v, %q; want body x", err, req.Body)
	}
}

// TestStreamBodyFromSrc: once the reader is drained, large pieces come
// straight from Src (spliced between TCP connections), with progress
// reported; the bytes are the same.
func TestStreamBodyFromSrc(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 3*splicePiece/16+100)
	for _, framing := range []string{"content-length", "chunked"} {
		t.Run(framing, func(t *testing.T) {
			raw := "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
			want := body
			if framing == "chunked" {
				size := strconv.FormatInt(int64(len(body)), 16)
				raw = "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n"
				want = size + "\r\n" + body + "\r\n0\r\n\r\n"
			}
			src := strings.NewReader(raw)
			br := bufio.NewReaderSize(src, 4096)
			req, err := ReadHead(br, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			calls := 0
			n, err := req.StreamBody(&out, br, 100<<20, StreamOptions{Src: src, Progress: func() { calls++ }})
			if err != nil || out.String() != want || n != int64(len(want)) {
				t.Fatalf("StreamBody = %d, %v; output %d bytes, equal %v", n, err, out.Len(), out.String() == want)
			}
			if calls < 4 {
				t.Errorf("%d progress calls; want one per piece", calls)
			}
		})
	}
}
