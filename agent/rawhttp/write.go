package rawhttp

import (
	"bufio"
	"io"
)

// WriteTo serializes the request as it goes upstream: the request line with
// the raw target, every header as "Name: Value" in slice order, an empty
// line and the body. It writes exactly the header list it is given; callers
// make the framing headers agree with Body.
func (r *Request) WriteTo(w io.Writer) (int64, error) {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 4096)
	}
	cw := countWriter{w: bw}
	cw.str(r.Method)
	cw.str(" ")
	cw.str(r.Target)
	cw.str(" ")
	cw.str(r.Proto)
	cw.str("\r\n")
	for _, h := range r.Headers {
		cw.str(h.Name)
		cw.str(": ")
		cw.str(h.Value)
		cw.str("\r\n")
	}
	cw.str("\r\n")
	if cw.err == nil && len(r.Body) > 0 {
		var n int
		n, cw.err = bw.Write(r.Body)
		cw.n += int64(n)
	}
	if cw.err == nil {
		cw.err = bw.Flush()
	}
	return cw.n, cw.err
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) str(s string) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.WriteString(s)
	c.n += int64(n)
}
