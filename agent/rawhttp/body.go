package rawhttp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ReadBody reads the request body announced by the head into r.Body,
// de-chunking a chunked body (chunk extensions and trailers are read and
// dropped). A body longer than limit bytes fails with an *Error of status
// 413 that matches ErrBodyTooLarge; nothing after the limit is read, so the
// connection must be closed.
func (r *Request) ReadBody(br *bufio.Reader, limit int64) error {
	switch {
	case r.chunked:
		return r.readChunked(br, limit)
	case r.contentLength > 0:
		if r.contentLength > limit {
			return tooLarge(limit)
		}
		r.Body = make([]byte, r.contentLength)
		if _, err := io.ReadFull(br, r.Body); err != nil {
			r.Body = nil
			return badBody("body ended after fewer than %d bytes: %v", r.contentLength, err)
		}
	default:
		r.Body = nil
	}
	return nil
}

func tooLarge(limit int64) *Error {
	return &Error{Status: 413, Reason: ReasonBodyTooLarge, Msg: fmt.Sprintf("body exceeds %d bytes", limit)}
}

func badBody(format string, args ...any) *Error {
	return &Error{Status: 400, Reason: ReasonBadBody, Msg: fmt.Sprintf(format, args...)}
}

// maxChunkLine bounds a chunk-size line including extensions.
const maxChunkLine = 4096

func (r *Request) readChunked(br *bufio.Reader, limit int64) error {
	var body []byte
	for {
		budget := maxChunkLine
		line, err := readLine(br, &budget)
		if err != nil {
			return chunkErr(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return badBody("chunk size line %q: want hexadecimal size", clip(line))
		}
		if size == 0 {
			break
		}
		if int64(len(body))+size > limit {
			return tooLarge(limit)
		}
		n := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(br, body[n:]); err != nil {
			return badBody("chunk ended early: %v", err)
		}
		budget = 2
		crlf, err := readLine(br, &budget)
		if err != nil || crlf != "" {
			return badBody("chunk data not followed by CRLF")
		}
	}
	// Trailer section: header lines until an empty line; dropped.
	budget := DefaultMaxHeaderBytes
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return chunkErr(err)
		}
		if line == "" {
			break
		}
	}
	r.Body = body
	return nil
}

func chunkErr(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Status == 431 {
		return badBody("chunk framing line too long")
	}
	if errors.Is(err, io.EOF) {
		return badBody("connection closed inside a chunked body")
	}
	return badBody("chunked body: %v", err)
}

// parseChunkSize reads the hex size before any ';' extension.
func parseChunkSize(line string) (int64, bool) {
	end := len(line)
	for i := 0; i < len(line); i++ {
		if line[i] == ';' || line[i] == ' ' || line[i] == '\t' {
			end = i
			break
		}
	}
	s := line[:end]
	if s == "" || len(s) > 15 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// Dechunk switches a chunked request whose body was read to Content-Length
// framing: the Transfer-Encoding header is replaced, in its place, by
// Content-Length with the de-chunked size. It does nothing to other
// requests.
func (r *Request) Dechunk() {
	if !r.chunked {
		return
	}
	for i, h := range r.Headers {
		if strings.EqualFold(h.Name, "Transfer-Encoding") {
			r.Headers[i] = Header{Name: "Content-Length", Value: strconv.Itoa(len(r.Body))}
		}
	}
	r.chunked = false
	r.contentLength = int64(len(r.Body))
}
