package hostsim

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/hostsig"
	"github.com/mspguest/msp/hostsim/wire"
)

// received is one request with its body read: buffered in req.Body, or,
// for the exempt uploads, streamed through a counter, a SHA-256 and (when
// signed with a key the host holds) the MAC, never held whole.
type received struct {
	req      *wire.Request
	streamed bool
	bodyLen  int64
	bodySHA  [sha256.Size]byte
	// streamKey and streamMAC: the key the streamed body was MACed with
	// and the MAC; nil when unsigned or the key is unknown.
	streamKey []byte
	streamMAC []byte
}

// receive reads the body of req: exempt uploads are streamed up to
// maxStreamedBody, everything else is buffered up to maxBody.
func (e *Emulator) receive(ep hostproto.Endpoint, req *wire.Request, br *bufio.Reader) (*received, error) {
	in := &received{req: req}
	if !hostproto.Exempt(req.Method, req.Target) {
		if err := req.ReadBody(br, maxBody); err != nil {
			return nil, err
		}
		in.bodyLen = int64(len(req.Body))
		in.bodySHA = sha256.Sum256(req.Body)
		return in, nil
	}
	in.streamed = true
	sum := sha256.New()
	sinks := []io.Writer{sum}
	var mac *hostsig.Streaming
	if v, ok := req.Value(hostsig.AuthorizationName); ok {
		if p, err := hostsig.ParseAuthorization(v); err == nil {
			if key := e.verifyKey(ep, classExempt, req.Target, p.GUID); key != nil {
				in.streamKey = key
				mac = hostsig.NewMAC(key, req.Method)
				sinks = append(sinks, mac)
			}
		}
	}
	n, err := io.Copy(io.MultiWriter(sinks...), req.BodyReader(br, maxStreamedBody))
	if err != nil {
		return nil, err
	}
	in.bodyLen = n
	copy(in.bodySHA[:], sum.Sum(nil))
	if mac != nil {
		in.streamMAC = mac.Sum(req.Target, signingHeaders(req))
	}
	return in, nil
}

// macFor returns the MAC of the request under key, or nil when the body
// was streamed under another key (or none).
func (in *received) macFor(key []byte) []byte {
	if !in.streamed {
		return hostsig.MAC(key, in.req.Method, in.req.Target, signingHeaders(in.req), in.req.Body)
	}
	if in.streamKey == nil || !bytes.Equal(in.streamKey, key) {
		return nil
	}
	return in.streamMAC
}

func signingHeaders(req *wire.Request) []hostsig.Header {
	hs := make([]hostsig.Header, len(req.Header))
	for i, h := range req.Header {
		hs[i] = hostsig.Header{Name: h.Name, Value: h.Value}
	}
	return hs
}

// forContent is the request as package content reads it (routing and
// answers only; nothing there is signed or verified).
func forContent(r *wire.Request) *rawhttp.Request {
	out := &rawhttp.Request{Method: r.Method, Target: r.Target, Proto: r.Proto, Body: r.Body, Headers: make([]rawhttp.Header, len(r.Header))}
	for i, h := range r.Header {
		out.Headers[i] = rawhttp.Header{Name: h.Name, Value: strings.Trim(h.Value, " \t")}
	}
	return out
}
