package authz

import (
	"errors"
	"fmt"

	"github.com/mspguest/msp/agent/rawhttp"
)

// ErrPathRejected is matched by every error of the path pre-checks
// (agent.md §5.2 step 3; authorization.md §8 I-4, I-5, I-7 and the decoded
// class of I-24). The proxy answers 403 with reason path-rejected in every
// mode.
var ErrPathRejected = errors.New("path rejected")

// pathError is a static pre-check failure of the decoded class (403); the
// values below are never modified, so returning them does not allocate.
type pathError string

func (e pathError) Error() string        { return "path rejected: " + string(e) }
func (e pathError) Is(target error) bool { return target == ErrPathRejected }

// rawError is a static failure of the raw-byte class (400
// bad-request-line): the request reader (rawhttp.CheckTarget) refuses the
// same targets with a message naming the byte.
type rawError string

func (e rawError) Error() string { return "bad request-target: " + string(e) }

const (
	errNotOrigin rawError = "not in origin form (must start with /)"
	errRawByte   rawError = "a byte outside RFC 3986 path and query characters"

	errRawDoubleSlash pathError = "raw path contains \"//\""
	errDotDot         pathError = "decoded path contains \"..\""
	errControl        pathError = "decoded path contains a control character"
	errDecodedDouble  pathError = "decoded path contains \"//\""
	errDotSegment     pathError = "decoded path contains a \".\" segment"
	errEmptySegment   pathError = "a path segment is empty once its ;params are removed"
	errBadEscape      pathError = "a \"%\" in the path is not followed by two hex digits (IIS %uNNNN included)"
	errPercent25      pathError = "the path contains %25, a double encoding"
	errBackslash      pathError = "the path contains %5C, which the host reads as \"/\""
	errHighByte       pathError = "the path decodes to a byte >= 0x80 (overlong or look-alike encoding)"
	errTrailingDot    pathError = "a decoded path segment ends in \".\" or a space, which the host strips"
	errQueryEscape    pathError = "a \"%\" in the query is not followed by two hex digits (IIS %uNNNN included)"
	errQueryHighByte  pathError = "the query decodes to a byte >= 0x80 (overlong or look-alike encoding)"
)

// span is a byte range [off, end) of Canonical.buf.
type span struct{ off, end int32 }

// pair is one query parameter.
type pair struct{ k, v span }

// Canonical is the derived form of a request-target used for matching
// (authorization.md §4.4): the path decoded once, ASCII lower-cased, split
// into segments with ;params dropped, and the query pairs of the real and
// the embedded (%3F) query, decoded once and lower-cased. The zero value is
// ready to use; Parse reuses its buffers, so one Canonical per goroutine
// (or from a pool) makes matching allocation-free.
type Canonical struct {
	buf   []byte
	segs  []span
	pairs []pair
	slash bool // the path ends with "/"
}

// Parse fills c from a raw request-target, replacing what it held. It is
// the strict reading of authorization.md I-24 and the pre-checks of
// agent.md §5.2 step 3: a target that is not in origin form or holds a
// byte outside RFC 3986 path and query characters fails with a raw-class
// error (400 bad-request-line, see CheckTarget); every other failure
// matches ErrPathRejected (403). Parse does not allocate once c's buffers
// have grown.
func (c *Canonical) Parse(target string) error {
	c.buf, c.segs, c.pairs, c.slash = c.buf[:0], c.segs[:0], c.pairs[:0], false
	if target == "" || target[0] != '/' {
		return errNotOrigin
	}
	q, err := scanRaw(target)
	if err != nil {
		return err
	}
	rawPath, rawQuery, hasQuery := target[:q], "", q < len(target)
	if hasQuery {
		rawQuery = target[q+1:]
	}
	// §4.4 step 3: decode the whole raw path once; I-4 and I-7 apply to
	// all of it, including an embedded query (as GPA's substring test).
	// After scanRaw the decoded path holds no '%', no '\' and no
	// byte >= 0x80.
	c.buf = appendDecoded(c.buf, rawPath)
	n := len(c.buf)
	for _, b := range c.buf {
		if b < 0x20 || b == 0x7f {
			return errControl
		}
	}
	if containsDotDot(c.buf) {
		return errDotDot
	}
	// §4.4 step 4: a decoded '?' (a raw %3F) starts an embedded query.
	pathEnd := n
	embedded := -1
	for i, b := range c.buf {
		if b == '?' {
			pathEnd, embedded = i, i+1
			break
		}
	}
	if err := c.splitPath(pathEnd); err != nil {
		return err
	}
	if hasQuery {
		addPairs(c, rawQuery)
	}
	if embedded >= 0 {
		// The embedded query was decoded with the path; its pairs are
		// decoded again like any query pair, as GPA does (§4.2). Since
		// the path holds no %25, that second decoding changes nothing.
		// buf[embedded:n:n] is never written: new bytes go after n.
		addPairs(c, c.buf[embedded:n:n])
	}
	return nil
}

// scanRaw checks the raw target in one pass and returns the index of its
// first '?' (len(target) when there is none). A byte outside RFC 3986
// path and query characters wins over every other finding (the reader
// refuses it first); then the first of: "//" in the raw path, or an escape
// that checkEscape refuses.
func scanRaw(target string) (int, error) {
	q := len(target)
	var first error
	for i := 0; i < len(target); i++ {
		b := target[i]
		if !rawhttp.TargetChar(b) {
			return q, errRawByte
		}
		if first != nil {
			continue
		}
		inPath := i < q
		switch {
		case b == '?' && inPath:
			q = i
		case b == '/' && inPath && i > 0 && target[i-1] == '/':
			first = errRawDoubleSlash
		case b == '%':
			if first = checkEscape(target, i, inPath); first == nil {
				i += 2
			}
		}
	}
	return q, first
}

// checkEscape applies the escape rules of I-24 to the '%' at s[i]: it is
// followed by two hex digits and decodes to a byte below 0x80; in the
// path, moreover, neither to '%' (a double encoding) nor to '\'.
func checkEscape(s string, i int, inPath bool) error {
	var hi, lo byte
	ok1, ok2 := false, false
	if i+2 < len(s) {
		hi, ok1 = unhex(s[i+1])
		lo, ok2 = unhex(s[i+2])
	}
	b := hi<<4 | lo
	switch {
	case (!ok1 || !ok2) && inPath:
		return errBadEscape
	case !ok1 || !ok2:
		return errQueryEscape
	case b >= 0x80 && inPath:
		return errHighByte
	case b >= 0x80:
		return errQueryHighByte
	case inPath && b == '%':
		return errPercent25
	case inPath && b == '\\':
		return errBackslash
	}
	return nil
}

// splitPath lower-cases buf[:end] (a decoded path starting with '/') and
// records its segments without ;params.
func (c *Canonical) splitPath(end int) error {
	p := c.buf[:end]
	for i := 1; i < len(p); i++ {
		if p[i] == '/' && p[i-1] == '/' {
			return errDecodedDouble
		}
	}
	lowerASCII(p)
	start := 1
	for start <= len(p) {
		stop := start
		for stop < len(p) && p[stop] != '/' {
			stop++
		}
		last := stop >= len(p)
		seg := p[start:stop]
		if len(seg) == 1 && seg[0] == '.' {
			return errDotSegment
		}
		segEnd := stop
		for j := start; j < stop; j++ {
			if p[j] == ';' {
				segEnd = j
				break
			}
		}
		// I-24: Windows strips a trailing '.' or space from a segment;
		// refuse it, in the whole segment and before its ;params.
		if endsInDotOrSpace(seg) || endsInDotOrSpace(p[start:segEnd]) {
			if segEnd == start+1 && p[start] == '.' {
				return errDotSegment // ".;x" is a dot segment to a params-aware upstream
			}
			return errTrailingDot
		}
		switch {
		case segEnd == start && last:
			c.slash = true
		case segEnd == start:
			return errEmptySegment
		default:
			c.segs = append(c.segs, span{int32(start), int32(segEnd)})
		}
		start = stop + 1
	}
	return nil
}

// addPairs splits a query on '&' and the first '=', skips empty keys and
// appends each key and value decoded once and lower-cased (§4.4 step 6).
func addPairs[S ~string | ~[]byte](c *Canonical, q S) {
	for len(q) > 0 {
		amp := indexByte(q, '&')
		part := q
		if amp >= 0 {
			part, q = q[:amp], q[amp+1:]
		} else {
			q = q[len(q):]
		}
		k, v := part, part[len(part):]
		if eq := indexByte(part, '='); eq >= 0 {
			k, v = part[:eq], part[eq+1:]
		}
		if len(k) == 0 {
			continue
		}
		var p pair
		p.k.off = int32(len(c.buf))
		c.buf = appendDecoded(c.buf, k)
		p.k.end = int32(len(c.buf))
		lowerASCII(c.buf[p.k.off:])
		p.v.off = p.k.end
		c.buf = appendDecoded(c.buf, v)
		p.v.end = int32(len(c.buf))
		lowerASCII(c.buf[p.v.off:])
		c.pairs = append(c.pairs, p)
	}
}

func indexByte[S ~string | ~[]byte](s S, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

func (c *Canonical) bytes(s span) []byte { return c.buf[s.off:s.end] }

// Segments returns the path segments (for tests and explanations; it
// allocates).
func (c *Canonical) Segments() []string {
	out := make([]string, len(c.segs))
	for i, s := range c.segs {
		out[i] = string(c.bytes(s))
	}
	return out
}

// Query returns the query pairs in request order, real query first (for
// tests and explanations; it allocates).
func (c *Canonical) Query() [][2]string {
	out := make([][2]string, len(c.pairs))
	for i, p := range c.pairs {
		out[i] = [2]string{string(c.bytes(p.k)), string(c.bytes(p.v))}
	}
	return out
}

// String renders the canonical form as a request-target that parses back
// to the same form: segments and pairs percent-encoded where a byte would
// otherwise be read as syntax.
func (c *Canonical) String() string {
	var b []byte
	b = append(b, '/')
	for i, s := range c.segs {
		if i > 0 {
			b = append(b, '/')
		}
		b = appendEscaped(b, c.bytes(s))
	}
	if c.slash && len(c.segs) > 0 {
		b = append(b, '/')
	}
	for i, p := range c.pairs {
		if i == 0 {
			b = append(b, '?')
		} else {
			b = append(b, '&')
		}
		b = appendEscaped(b, c.bytes(p.k))
		b = append(b, '=')
		b = appendEscaped(b, c.bytes(p.v))
	}
	return string(b)
}

// TargetError is a request-target refused by CheckTarget. Status and
// Reason are what the proxy answers (400 bad-request-line for the raw-byte
// class, 403 path-rejected for the decoded class); Msg names the problem.
// It matches ErrPathRejected when Reason is ReasonPathRejected.
type TargetError struct {
	Status int
	Reason Reason
	Msg    string
}

func (e *TargetError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Reason, e.Msg) }

// Is reports whether target is ErrPathRejected and e is of the decoded
// class.
func (e *TargetError) Is(target error) bool {
	return target == ErrPathRejected && e.Reason == ReasonPathRejected
}

// CheckTarget is the one strict reading of a request-target
// (authorization.md I-24 with I-4, I-5, I-7): nil when the target may be
// matched and forwarded, else a *TargetError. The proxy calls it after
// reading the head and before anything else looks at the target; `mspctl
// sign` and `mspctl policy explain` refuse the same targets; Decide
// applies the same checks (through Canonical.Parse) and denies with the
// same reason. It allocates a few small buffers; Canonical.CheckTarget
// reuses its own.
func CheckTarget(target string) error {
	var c Canonical
	return c.CheckTarget(target)
}

// CheckTarget is the package function CheckTarget using c's buffers, so
// that a caller that keeps one Canonical per goroutine (the proxy, per
// connection) checks accepted targets without allocating. c then holds
// the canonical form of target.
func (c *Canonical) CheckTarget(target string) error {
	if err := rawhttp.CheckTarget(target); err != nil {
		var re *rawhttp.Error
		if errors.As(err, &re) {
			return &TargetError{Status: re.Status, Reason: Reason(re.Reason), Msg: re.Msg}
		}
		return &TargetError{Status: 400, Reason: ReasonBadRequestLine, Msg: err.Error()}
	}
	if err := c.Parse(target); err != nil {
		status, reason := refusal(err)
		return &TargetError{Status: status, Reason: reason, Msg: fmt.Sprintf("request-target %q: %v", clip(target), err)}
	}
	return nil
}

// CheckPath is CheckTarget under its former name.
//
// Deprecated: call CheckTarget.
func CheckPath(target string) error { return CheckTarget(target) }

// refusal maps a Parse error to the status and reason the proxy answers.
func refusal(err error) (int, Reason) {
	if _, raw := err.(rawError); raw {
		return 400, ReasonBadRequestLine
	}
	return 403, ReasonPathRejected
}

// clip shortens a target quoted in an error message.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "..."
	}
	return s
}

// appendDecoded appends s percent-decoded once: invalid escapes stay
// literal and '+' is not a space (§4.4 step 3).
func appendDecoded[S ~string | ~[]byte](dst []byte, s S) []byte {
	for {
		i := indexByte(s, '%')
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) >= 3 {
			hi, ok1 := unhex(s[1])
			lo, ok2 := unhex(s[2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				s = s[3:]
				continue
			}
		}
		dst = append(dst, '%') // an invalid escape stays literal
		s = s[1:]
	}
}

func unhex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

func lowerASCII(b []byte) {
	for i, x := range b {
		if 'A' <= x && x <= 'Z' {
			b[i] = x + 'a' - 'A'
		}
	}
}

func endsInDotOrSpace(seg []byte) bool {
	n := len(seg)
	return n > 0 && (seg[n-1] == '.' || seg[n-1] == ' ')
}

func containsDotDot(b []byte) bool {
	for i := 1; i < len(b); i++ {
		if b[i] == '.' && b[i-1] == '.' {
			return true
		}
	}
	return false
}

// appendEscaped percent-encodes every byte but unreserved ones and a few
// sub-delimiters that carry no meaning to Parse.
func appendEscaped(dst, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, b := range s {
		switch {
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9',
			b == '-', b == '.', b == '_', b == '~', b == ':', b == '@',
			b == '!', b == '$', b == '\'', b == '(', b == ')', b == '*', b == '+', b == ',':
			dst = append(dst, b)
		default:
			dst = append(dst, '%', hex[b>>4], hex[b&15])
		}
	}
	return dst
}
