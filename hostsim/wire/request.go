package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Header is one header field as received: Value is everything after the
// colon up to the line ending, surrounding white space included.
type Header struct {
	Name  string
	Value string
}

// Request is a request head plus, once read, its body.
type Request struct {
	Method string
	Target string // request-target exactly as received
	Proto  string // "HTTP/1.1" or "HTTP/1.0"
	Header []Header
	Body   []byte // set by ReadBody

	length  int64 // Content-Length, -1 if absent
	chunked bool
}

// Reason codes of refusals (the same words the agent's reader uses, so
// verification records read alike).
const (
	ReasonBadRequestLine = "bad-request-line"
	ReasonBadHeader      = "bad-header"
	ReasonBadFraming     = "bad-framing"
	ReasonHeaderTooLarge = "header-too-large"
	ReasonBodyTooLarge   = "body-too-large"
	ReasonBadBody        = "bad-body"
)

// Error is a refused request. Method is set when the request line was
// read, so the answer to a HEAD can leave its body out.
type Error struct {
	Status int
	Reason string
	Msg    string
	Method string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Msg }

func refuse(status int, reason, format string, args ...any) *Error {
	return &Error{Status: status, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// MaxHead bounds the request line plus the header section.
const MaxHead = 64 << 10

// Value returns the last field named name (ASCII case-insensitive) with
// surrounding spaces and tabs removed.
func (r *Request) Value(name string) (string, bool) {
	for i := len(r.Header) - 1; i >= 0; i-- {
		if strings.EqualFold(r.Header[i].Name, name) {
			return strings.Trim(r.Header[i].Value, " \t"), true
		}
	}
	return "", false
}

// Chunked reports whether the body is chunked; Length is the declared
// Content-Length or -1.
func (r *Request) Chunked() bool { return r.chunked }
func (r *Request) Length() int64 { return r.length }

// ReadHead reads one request head. io.EOF means the peer closed before
// sending a byte.
func ReadHead(br *bufio.Reader) (*Request, error) {
	budget := MaxHead
	first, err := line(br, &budget)
	if err != nil {
		if errors.Is(err, io.EOF) && first == nil {
			return nil, io.EOF
		}
		return nil, headErr(err, "")
	}
	r := &Request{length: -1}
	if err := r.requestLine(string(first)); err != nil {
		return nil, err
	}
	for {
		l, err := line(br, &budget)
		if err != nil {
			return nil, headErr(err, r.Method)
		}
		if len(l) == 0 {
			break
		}
		h, ferr := field(l)
		if ferr != nil {
			ferr.Method = r.Method
			return nil, ferr
		}
		r.Header = append(r.Header, h)
	}
	if ferr := r.framing(); ferr != nil {
		ferr.Method = r.Method
		return nil, ferr
	}
	return r, nil
}

func headErr(err error, method string) error {
	var e *Error
	if errors.As(err, &e) {
		e.Method = method
		return e
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Status: 400, Reason: ReasonBadHeader, Msg: "connection closed inside the request head", Method: method}
	}
	return err // timeout or reset: nothing to answer
}

var errLong = refuse(431, ReasonHeaderTooLarge, "request line and header section exceed %d bytes", MaxHead)

// line reads up to LF, charging the budget, and returns the line without
// CRLF or LF. A nil line with io.EOF means nothing was read.
func line(br *bufio.Reader, budget *int) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			if out == nil {
				return nil, err
			}
			return out, io.ErrUnexpectedEOF
		}
		*budget--
		if *budget < 0 {
			e := *errLong
			return out, &e
		}
		if b == '\n' {
			if n := len(out); n > 0 && out[n-1] == '\r' {
				out = out[:n-1]
			}
			if out == nil {
				out = []byte{}
			}
			return out, nil
		}
		out = append(out, b)
	}
}

func (r *Request) requestLine(l string) error {
	parts := strings.Split(l, " ")
	if len(parts) != 3 {
		return refuse(400, ReasonBadRequestLine, "request line: want METHOD SP TARGET SP HTTP/1.1")
	}
	m, t, p := parts[0], parts[1], parts[2]
	if !token(m) {
		return refuse(400, ReasonBadRequestLine, "method: not a token")
	}
	if !strings.HasPrefix(t, "/") {
		return refuse(400, ReasonBadRequestLine, "request-target: want origin form starting with /")
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= 0x20 || t[i] >= 0x7f {
			return &Error{Status: 400, Reason: ReasonBadRequestLine, Msg: fmt.Sprintf("request-target: byte 0x%02x not allowed", t[i]), Method: m}
		}
	}
	if p != "HTTP/1.1" && p != "HTTP/1.0" {
		return &Error{Status: 400, Reason: ReasonBadRequestLine, Msg: "protocol: want HTTP/1.1 or HTTP/1.0", Method: m}
	}
	r.Method, r.Target, r.Proto = m, t, p
	return nil
}

func field(l []byte) (Header, *Error) {
	if l[0] == ' ' || l[0] == '\t' {
		return Header{}, refuse(400, ReasonBadHeader, "obsolete line folding is not accepted")
	}
	colon := bytes.IndexByte(l, ':')
	if colon < 0 {
		return Header{}, refuse(400, ReasonBadHeader, "header line without ':'")
	}
	name := string(l[:colon])
	if !token(name) {
		return Header{}, refuse(400, ReasonBadHeader, "header name %q: not a token (no white space before ':')", clip(name))
	}
	for _, c := range l[colon+1:] {
		if c != '\t' && (c < 0x20 || c > 0x7e) {
			return Header{}, refuse(400, ReasonBadHeader, "header %s: byte 0x%02x is not visible ASCII, space or tab", clip(name), c)
		}
	}
	return Header{Name: name, Value: string(l[colon+1:])}, nil
}

// framing applies RFC 9112 §6: one Host, at most one Content-Length, not
// with Transfer-Encoding, and only "chunked" as a transfer coding.
func (r *Request) framing() *Error {
	hosts, te := 0, 0
	for _, h := range r.Header {
		v := strings.Trim(h.Value, " \t")
		switch strings.ToLower(h.Name) {
		case "host":
			hosts++
		case "content-length":
			if r.length >= 0 {
				return refuse(400, ReasonBadFraming, "more than one Content-Length")
			}
			n, ok := decimal(v)
			if !ok {
				return refuse(400, ReasonBadFraming, "Content-Length %q: want a decimal byte count", clip(v))
			}
			r.length = n
		case "transfer-encoding":
			te++
			if !strings.EqualFold(v, "chunked") {
				return refuse(400, ReasonBadFraming, "Transfer-Encoding %q: only chunked is accepted", clip(v))
			}
		}
	}
	switch {
	case hosts != 1:
		return refuse(400, ReasonBadFraming, "%d Host fields: want exactly one", hosts)
	case te > 1:
		return refuse(400, ReasonBadFraming, "more than one Transfer-Encoding")
	case te == 1 && r.length >= 0:
		return refuse(400, ReasonBadFraming, "both Content-Length and Transfer-Encoding")
	}
	r.chunked = te == 1
	return nil
}

func decimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func token(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
