package wire

import (
	"bufio"
	"errors"
	"io"
)

// ReadBody buffers the whole body (de-chunked) into r.Body.
func (r *Request) ReadBody(br *bufio.Reader, limit int64) error {
	b, err := io.ReadAll(r.BodyReader(br, limit))
	if err != nil {
		return err
	}
	if len(b) > 0 {
		r.Body = b
	}
	return nil
}

// BodyReader streams the de-chunked body. Reading past limit bytes fails
// with a 413 *Error; a short or malformed body with a 400 *Error. The
// reader must be read to io.EOF before the next request on the connection.
func (r *Request) BodyReader(br *bufio.Reader, limit int64) io.Reader {
	switch {
	case r.chunked:
		return &chunkReader{br: br, limit: limit}
	case r.length > limit:
		return errReader{refuse(413, ReasonBodyTooLarge, "body of %d bytes exceeds %d", r.length, limit)}
	case r.length > 0:
		return &fixedReader{br: br, left: r.length}
	}
	return errReader{io.EOF}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type fixedReader struct {
	br   *bufio.Reader
	left int64
}

func (f *fixedReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.br.Read(p)
	f.left -= int64(n)
	if err != nil && f.left > 0 {
		return n, refuse(400, ReasonBadBody, "body ended %d bytes early", f.left)
	}
	return n, nil
}

// chunkReader de-chunks RFC 9112 §7.1 framing; extensions and trailers
// are read and dropped.
type chunkReader struct {
	br    *bufio.Reader
	limit int64
	total int64
	left  int64 // of the current chunk
	done  bool
	err   error
}

const maxChunkLine = 4096

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
		if c.done {
			c.err = io.EOF
			return 0, io.EOF
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if err != nil && (c.left > 0 || !errors.Is(err, io.EOF)) {
		c.err = refuse(400, ReasonBadBody, "connection closed inside a chunk")
		return n, c.err
	}
	if c.left == 0 {
		budget := 2
		l, err := line(c.br, &budget)
		if err != nil || len(l) != 0 {
			c.err = refuse(400, ReasonBadBody, "chunk data not followed by CRLF")
			return n, c.err
		}
	}
	return n, nil
}

// next reads a chunk-size line; a zero size reads the trailer section.
func (c *chunkReader) next() error {
	budget := maxChunkLine
	l, err := line(c.br, &budget)
	if err != nil {
		return refuse(400, ReasonBadBody, "chunk size line unreadable or too long")
	}
	size, ok := chunkSize(l)
	if !ok {
		return refuse(400, ReasonBadBody, "chunk size line %q: want hexadecimal size", clip(string(l)))
	}
	if size == 0 {
		budget = MaxHead
		for {
			t, err := line(c.br, &budget)
			if err != nil {
				return refuse(400, ReasonBadBody, "trailer section unreadable")
			}
			if len(t) == 0 {
				c.done = true
				return nil
			}
		}
	}
	if c.total+size > c.limit {
		return refuse(413, ReasonBodyTooLarge, "chunked body exceeds %d bytes", c.limit)
	}
	c.total += size
	c.left = size
	return nil
}

func chunkSize(l []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range l {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		digits++
		if digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}
