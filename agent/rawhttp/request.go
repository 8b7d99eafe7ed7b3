package rawhttp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Header is one header field. Value has the optional white space around it
// removed (RFC 9112 §5); inner white space is kept.
type Header struct {
	Name  string
	Value string
}

// Request is one HTTP/1.x request with its wire details intact.
type Request struct {
	Method string
	// Target is the request-target exactly as received (origin form).
	Target string
	// Proto is "HTTP/1.1" or "HTTP/1.0".
	Proto string
	// Headers in wire order, duplicates included.
	Headers []Header
	// Body holds the de-chunked body once ReadBody ran.
	Body []byte

	// framing, filled by ReadHead.
	contentLength int64 // -1 when absent
	chunked       bool
}

// Limits bound what the reader accepts.
type Limits struct {
	// MaxHeaderBytes bounds the request line plus the header section
	// (default 64 KiB, agent.md §5.5).
	MaxHeaderBytes int
}

// DefaultMaxHeaderBytes is the header section limit of agent.md §5.5.
const DefaultMaxHeaderBytes = 64 << 10

// Error is a request the proxy refuses. Status is the HTTP status to answer
// with and Reason a short code for the x-ms-azure-proxy-reason header.
type Error struct {
	Status int
	Reason string
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Reason, e.Msg) }

func badRequest(reason, format string, args ...any) *Error {
	return &Error{Status: 400, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Reason codes of reader errors.
const (
	ReasonBadRequestLine = "bad-request-line"
	ReasonBadHeader      = "bad-header"
	ReasonBadFraming     = "bad-framing"
	ReasonHeaderTooLarge = "header-too-large"
	ReasonBodyTooLarge   = "body-too-large"
	ReasonBadBody        = "bad-body"
)

// ErrBodyTooLarge is matched (errors.Is) by the *Error ReadBody returns when
// the body exceeds its limit.
var ErrBodyTooLarge = errors.New("request body too large")

func (e *Error) Is(target error) bool {
	return target == ErrBodyTooLarge && e.Reason == ReasonBodyTooLarge
}

// ContentLength returns the declared Content-Length, or -1.
func (r *Request) ContentLength() int64 { return r.contentLength }

// Chunked reports whether the body uses chunked transfer coding.
func (r *Request) Chunked() bool { return r.chunked }

// Get returns the value of the last header named name (case-insensitive),
// and whether one exists.
func (r *Request) Get(name string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if strings.EqualFold(r.Headers[i].Name, name) {
			return r.Headers[i].Value, true
		}
	}
	return "", false
}

// ReadHead reads the request line and the header section and checks the
// framing rules of agent.md §5.2 step 1: at most one Content-Length, not
// both Content-Length and Transfer-Encoding, Transfer-Encoding only
// "chunked" and never in HTTP/1.0, exactly one Host, header section within
// the limit, header values visible ASCII plus space and tab.
func ReadHead(br *bufio.Reader, lim Limits) (*Request, error) {
	max := lim.MaxHeaderBytes
	if max <= 0 {
		max = DefaultMaxHeaderBytes
	}
	budget := max
	// The head is read into one buffer and converted to one string, of
	// which the target and every header are substrings: two allocations
	// for the whole head instead of two per line.
	var stackEnds [64]int
	ends := stackEnds[:0]
	var buf []byte
	for {
		var err error
		buf, err = appendLine(buf, br, &budget)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(ends) == 0 && len(buf) == 0 {
					return nil, io.EOF
				}
				if len(ends) == 0 {
					return nil, badRequest(ReasonBadRequestLine, "connection closed mid-line")
				}
				return nil, badRequest(ReasonBadHeader, "connection closed inside the header section")
			}
			return nil, err
		}
		ends = append(ends, len(buf))
		if len(ends) > 1 && len(lineOf(buf, ends, len(ends)-1)) == 0 {
			break
		}
	}
	head := string(buf)
	line := func(i int) string {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return head[start : start+len(lineOf(buf, ends, i))]
	}
	req := &Request{contentLength: -1, Headers: make([]Header, 0, len(ends)+3)}
	if err := req.parseRequestLine(line(0)); err != nil {
		return nil, err
	}
	for i := 1; i < len(ends)-1; i++ {
		h, err := parseHeader(line(i))
		if err != nil {
			return nil, err
		}
		req.Headers = append(req.Headers, h)
	}
	if err := req.checkFraming(); err != nil {
		return nil, err
	}
	return req, nil
}

// lineOf returns line i of buf without its CRLF or LF ending.
func lineOf(buf []byte, ends []int, i int) []byte {
	start := 0
	if i > 0 {
		start = ends[i-1]
	}
	return trimEOL(buf[start:ends[i]])
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// appendLine appends one line, line ending included, to buf and charges it
// to the budget. io.EOF means the input ended before a line ending.
func appendLine(buf []byte, br *bufio.Reader, budget *int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return buf, &Error{Status: 431, Reason: ReasonHeaderTooLarge, Msg: "request line and header section exceed the limit"}
		}
		buf = append(buf, frag...)
		switch err {
		case nil:
			return buf, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return buf, err
		}
	}
}

// readLine reads one line (CRLF or bare LF) and returns it without its
// ending; io.EOF means the input ended before a line ending.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	buf, err := appendLine(nil, br, budget)
	if err != nil {
		return "", err
	}
	return string(trimEOL(buf)), nil
}

func (r *Request) parseRequestLine(line string) error {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || strings.Contains(proto, " ") {
		return badRequest(ReasonBadRequestLine, "request line %q: want METHOD SP TARGET SP HTTP/1.1", clip(line))
	}
	if !isToken(method) {
		return badRequest(ReasonBadRequestLine, "method %q: not a token", clip(method))
	}
	if err := CheckTarget(target); err != nil {
		return err
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return badRequest(ReasonBadRequestLine, "protocol %q: want HTTP/1.1 or HTTP/1.0", clip(proto))
	}
	r.Method, r.Target, r.Proto = method, target, proto
	return nil
}

// CheckTarget returns a 400 bad-request-line *Error when target is not in
// origin form (starting with "/") or holds a byte that is not an RFC 3986
// path or query character (TargetChar), naming the first such byte; nil
// otherwise. It is the raw-byte class of authorization.md I-24; the
// decoded class (a malformed or double "%" escape, decoded bytes the host
// could read differently) is authz.CheckTarget's, which calls this first.
func CheckTarget(target string) error {
	if target == "" || target[0] != '/' {
		return badRequest(ReasonBadRequestLine, "request-target %q: want origin form starting with /", clip(target))
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; !targetChar[c] {
			return badRequest(ReasonBadRequestLine, "request-target: byte %s at offset %d is not an RFC 3986 path or query character (percent-encode data)", describeByte(c), i)
		}
	}
	return nil
}

// TargetChar reports whether b may appear as is in an origin-form
// request-target: an RFC 3986 path or query character (ALPHA, DIGIT,
// "-._~", "!$&'()*+,;=", ":@", "/", "?") or "%", whose escapes
// authz.CheckTarget checks. Everything else (space, '\', '#', '"', '<',
// '>', '[', ']', '{', '}', '|', '^', '`', controls, bytes ≥ 0x80) must be
// percent-encoded.
func TargetChar(b byte) bool { return targetChar[b] }

var targetChar = alnumAnd("-._~!$&'()*+,;=:@/?%")

// describeByte renders b for an error message: its hex value, and the
// character when it is printable ASCII.
func describeByte(b byte) string {
	if b > ' ' && b < 0x7f {
		return fmt.Sprintf("0x%02x (%q)", b, rune(b))
	}
	return fmt.Sprintf("0x%02x", b)
}

func parseHeader(line string) (Header, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return Header{}, badRequest(ReasonBadHeader, "obsolete line folding is not accepted")
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return Header{}, badRequest(ReasonBadHeader, "header line %q: missing ':'", clip(line))
	}
	if !isToken(name) {
		return Header{}, badRequest(ReasonBadHeader, "header name %q: not a token (no white space before ':')", clip(name))
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c != '\t' && (c < ' ' || c > '~') {
			return Header{}, badRequest(ReasonBadHeader, "header %s: byte 0x%02x is not visible ASCII, space or tab", name, c)
		}
	}
	return Header{Name: name, Value: TrimOWS(value)}, nil
}

// TrimOWS removes leading and trailing spaces and tabs.
func TrimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

func (r *Request) checkFraming() error {
	hosts := 0
	var te []string
	for _, h := range r.Headers {
		switch {
		case strings.EqualFold(h.Name, "Host"):
			hosts++
		case strings.EqualFold(h.Name, "Content-Length"):
			if r.contentLength >= 0 {
				return badRequest(ReasonBadFraming, "more than one Content-Length header")
			}
			n, ok := parseDecimal(h.Value)
			if !ok {
				return badRequest(ReasonBadFraming, "Content-Length %q: want a decimal number of bytes", clip(h.Value))
			}
			r.contentLength = n
		case strings.EqualFold(h.Name, "Transfer-Encoding"):
			te = append(te, h.Value)
		}
	}
	if hosts != 1 {
		return badRequest(ReasonBadFraming, "%d Host headers: want exactly one", hosts)
	}
	if len(te) > 0 {
		if r.contentLength >= 0 {
			return badRequest(ReasonBadFraming, "both Content-Length and Transfer-Encoding: send one")
		}
		if r.Proto == "HTTP/1.0" {
			// RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding
			// has faulty framing; an HTTP/1.0 hop behind us would read
			// its body as the next request.
			return badRequest(ReasonBadFraming, "Transfer-Encoding in an HTTP/1.0 request: send Content-Length, or use HTTP/1.1")
		}
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return badRequest(ReasonBadFraming, "Transfer-Encoding %q: only chunked is accepted", clip(strings.Join(te, ", ")))
		}
		r.chunked = true
	}
	return nil
}

func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd returns a byte table holding ASCII letters, digits and the
// bytes of extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// clip shortens user input quoted in error messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
