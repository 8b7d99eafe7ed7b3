package rawhttp

import (
	"io"
)

// AppendHead appends the request line with the raw target and every header
// as "Name: Value" in slice order, then the empty line, to dst: the head as
// it goes upstream, ready for one write.
func (r *Request) AppendHead(dst []byte) []byte {
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, r.Target...)
	dst = append(dst, ' ')
	dst = append(dst, r.Proto...)
	dst = append(dst, "\r\n"...)
	for _, h := range r.Headers {
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// WriteTo serializes the request as it goes upstream, in one write: the
// head (AppendHead) and the body. It writes exactly the header list it is
// given; callers make the framing headers agree with Body. A buffered w is
// not flushed.
func (r *Request) WriteTo(w io.Writer) (int64, error) {
	n := len(r.Method) + len(r.Target) + len(r.Proto) + 6 + len(r.Body)
	for _, h := range r.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	buf := append(r.AppendHead(make([]byte, 0, n)), r.Body...)
	k, err := w.Write(buf)
	return int64(k), err
}
