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
// dropped). It appends to r.Body[:0], so a caller may lend a buffer
// through r.Body. The buffer grows as bytes arrive, never from a declared
// length: a Content-Length or chunk size of gigabytes costs nothing until
// the bytes come (issue 15 item 2). A body longer than limit bytes fails
// with an *Error of status 413 that matches ErrBodyTooLarge; nothing after
// the limit is read, so the connection must be closed.
func (r *Request) ReadBody(br *bufio.Reader, limit int64) error {
	body := r.Body[:0]
	var err error
	switch {
	case r.chunked:
		cr := chunkReader{br: br, limit: limit}
		for {
			var size int64
			if size, err = cr.next(); err != nil || size == 0 {
				break
			}
			if body, err = appendN(body, br, size); err != nil {
				err = badBody("chunk ended early: %v", err)
				break
			}
			if err = cr.endChunk(); err != nil {
				break
			}
		}
	case r.contentLength > limit:
		err = tooLarge(limit)
	case r.contentLength > 0:
		if body, err = appendN(body, br, r.contentLength); err != nil {
			err = badBody("body ended after fewer than %d bytes (%d arrived): %v", r.contentLength, len(body), err)
		}
	}
	if err != nil {
		r.Body = nil
		return err
	}
	if len(body) == 0 {
		body = nil
	}
	r.Body = body
	return nil
}

// growStep is the first allocation for a body; later ones at most double
// what has arrived.
const growStep = 4096

// appendN appends exactly n bytes from br to dst, growing dst only by what
// has arrived so far (at most doubling it), so that a declared length
// allocates nothing in advance.
func appendN(dst []byte, br *bufio.Reader, n int64) ([]byte, error) {
	for n > 0 {
		if len(dst) == cap(dst) {
			step := int64(max(cap(dst), growStep))
			dst = append(dst[:cap(dst)], make([]byte, min(n, step))...)[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		if int64(len(room)) > n {
			room = room[:n]
		}
		k, err := br.Read(room)
		dst = dst[:len(dst)+k]
		n -= int64(k)
		if err != nil && n > 0 {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
	}
	return dst, nil
}

// WriteError is a failure to write a streamed body to its destination, as
// opposed to a failure to read it (an *Error).
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write body: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// StreamBody copies the body announced by the head from br to w as it
// arrives, keeping its framing and never holding more than one copy buffer
// (agent.md §5.4, exempt requests): a Content-Length body is copied as is;
// a chunked body is re-framed chunk by chunk as "<hex size>\r\n<data>\r\n"
// and ended with "0\r\n\r\n" (extensions and trailers dropped). A body
// longer than limit fails with 413 (ErrBodyTooLarge): for Content-Length
// before anything is written, for a chunked body possibly after a part was
// written, so the caller closes both connections on any error. Read
// failures are *Error values; write failures are *WriteError values.
func (r *Request) StreamBody(w io.Writer, br *bufio.Reader, limit int64, opt StreamOptions) (int64, error) {
	cp := copier{w: w, br: br, StreamOptions: opt}
	switch {
	case r.chunked:
		cr := chunkReader{br: br, limit: limit}
		var line []byte
		for {
			size, err := cr.next()
			if err != nil {
				return cp.n, err
			}
			line = strconv.AppendInt(line[:0], size, 16)
			line = append(line, "\r\n"...)
			if size == 0 {
				line = append(line, "\r\n"...)
				return cp.n, cp.write(line)
			}
			if err := cp.write(line); err != nil {
				return cp.n, err
			}
			if err := cp.copyN(size); err != nil {
				return cp.n, err
			}
			if err := cr.endChunk(); err != nil {
				return cp.n, err
			}
			if err := cp.write(line[len(line)-2:]); err != nil {
				return cp.n, err
			}
		}
	case r.contentLength > limit:
		return 0, tooLarge(limit)
	case r.contentLength > 0:
		return cp.n, cp.copyN(r.contentLength)
	}
	return 0, nil
}

// StreamOptions tune StreamBody; the zero value copies through br alone.
type StreamOptions struct {
	// Src is the connection br reads from. Once br is drained, large
	// pieces of the body are copied from Src with io.CopyN, which the
	// kernel splices when Src and the destination are TCP connections.
	Src io.Reader
	// Progress, when not nil, is called after each write (the proxy
	// extends its deadlines there).
	Progress func()
}

// copier writes to a stream body's destination and counts.
type copier struct {
	StreamOptions
	w  io.Writer
	br *bufio.Reader
	n  int64
}

// Sizes of direct copies from StreamOptions.Src: from spliceMin bytes
// left, in pieces of at most splicePiece between progress calls.
const (
	spliceMin   = 64 << 10
	splicePiece = 1 << 20
)

func (c *copier) write(p []byte) error {
	k, err := c.w.Write(p)
	c.n += int64(k)
	if err != nil {
		return &WriteError{Err: err}
	}
	if c.Progress != nil {
		c.Progress()
	}
	return nil
}

// copyN copies n bytes from br to w in the reader's own buffer-sized
// pieces, without a buffer of its own; large remainders go directly from
// Src once br is drained.
func (c *copier) copyN(n int64) error {
	for n > 0 {
		if c.br.Buffered() == 0 && c.Src != nil && n >= spliceMin {
			k, err := io.CopyN(c.w, c.Src, min(n, splicePiece))
			c.n += k
			n -= k
			switch {
			case errors.Is(err, io.EOF):
				return badBody("body ended with %d bytes missing", n)
			case err != nil: // splice does not say which side failed
				return &WriteError{Err: err}
			}
			if c.Progress != nil {
				c.Progress()
			}
			continue
		}
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return badBody("body ended with %d bytes missing: %v", n, err)
			}
		}
		p, _ := c.br.Peek(int(min(int64(c.br.Buffered()), n)))
		if err := c.write(p); err != nil {
			return err
		}
		c.br.Discard(len(p))
		n -= int64(len(p))
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

// MaxChunkJunk bounds, per request, the bytes of chunk framing that carry
// no size: extensions, white space, leading zeros and the trailer section.
// A client cannot make the reader spend more than this on framing beyond
// the few bytes each chunk of data needs.
const MaxChunkJunk = 16 << 10

// chunkReader reads the framing of a chunked body; the caller reads each
// chunk's data itself.
type chunkReader struct {
	br    *bufio.Reader
	limit int64 // largest de-chunked body
	total int64 // de-chunked bytes announced so far
	junk  int   // framing bytes charged against MaxChunkJunk
}

// next reads a chunk-size line and returns the size; 0 means the last
// chunk, whose trailer section has then been read and dropped.
func (c *chunkReader) next() (int64, error) {
	budget := maxChunkLine
	line, err := readLine(c.br, &budget)
	if err != nil {
		return 0, chunkErr(err)
	}
	size, digits, ok := parseChunkSize(line)
	if !ok {
		return 0, badBody("chunk size line %q: want hexadecimal size", clip(line))
	}
	if err := c.charge(len(line) - digits); err != nil {
		return 0, err
	}
	if size == 0 {
		return 0, c.trailers()
	}
	if c.total+size > c.limit {
		return 0, tooLarge(c.limit)
	}
	c.total += size
	return size, nil
}

// endChunk reads the CRLF after a chunk's data.
func (c *chunkReader) endChunk() error {
	budget := 2
	crlf, err := readLine(c.br, &budget)
	if err != nil || crlf != "" {
		return badBody("chunk data not followed by CRLF")
	}
	return nil
}

// trailers reads the trailer section (header lines until an empty line)
// and drops it.
func (c *chunkReader) trailers() error {
	for {
		budget := maxChunkLine
		line, err := readLine(c.br, &budget)
		if err != nil {
			return chunkErr(err)
		}
		if line == "" {
			return nil
		}
		if err := c.charge(len(line) + 2); err != nil {
			return err
		}
	}
}

func (c *chunkReader) charge(n int) error {
	c.junk += n
	if c.junk > MaxChunkJunk {
		return badBody("chunk extensions and trailers exceed %d bytes", MaxChunkJunk)
	}
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

// ChunkSize parses a chunk-size line (without its line ending): the hex
// size before any ';' extension or white space, at most 15 digits. The
// proxy reads upstream chunked responses with it.
func ChunkSize[S ~string | ~[]byte](line S) (int64, bool) {
	n, _, ok := parseChunkSize(line)
	return n, ok
}

// parseChunkSize reads the hex size before any ';' extension and returns
// it with the number of significant digits.
func parseChunkSize[S ~string | ~[]byte](line S) (size int64, digits int, ok bool) {
	end := len(line)
	for i := 0; i < len(line); i++ {
		if line[i] == ';' || line[i] == ' ' || line[i] == '\t' {
			end = i
			break
		}
	}
	s := line[:end]
	if len(s) == 0 || len(s) > 15 {
		return 0, 0, false
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
			return 0, 0, false
		}
		if n != 0 || d != 0 {
			digits++
		}
		n = n<<4 | int64(d)
	}
	return n, max(digits, 1), true
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
