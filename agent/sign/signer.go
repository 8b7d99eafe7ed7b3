package sign

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// Scheme prefixes the authorization header value.
const Scheme = hostproto.Scheme

// Signer signs requests with one key. It is safe for concurrent use.
type Signer struct {
	guid string
	// macs pools HMAC states keyed with the secret; the key bytes live
	// only inside them.
	macs sync.Pool
}

// NewSigner returns a Signer for a 64-character hex key (any case) and its
// guid. Errors name the bad argument and never echo the key.
func NewSigner(keyHex, guid string) (*Signer, error) {
	key, err := hostproto.DecodeKeyHex(keyHex)
	if err != nil {
		return nil, err
	}
	return NewSignerBytes(key, guid)
}

// NewSignerBytes is NewSigner for a decoded 32-byte key. The Signer keeps
// its own copy of the key.
func NewSignerBytes(key []byte, guid string) (*Signer, error) {
	if len(key) != hostproto.KeySize {
		return nil, fmt.Errorf("key material: want %d bytes, got %d", hostproto.KeySize, len(key))
	}
	if !hostproto.ValidGUID(guid) {
		return nil, fmt.Errorf("key guid %q: want a GUID such as e3882f98-da8d-4410-8394-06c23462781c", guid)
	}
	k := bytes.Clone(key)
	s := &Signer{guid: guid}
	s.macs.New = func() any { return &macWriter{h: hmac.New(sha256.New, k)} }
	return s, nil
}

// GUID returns the key guid.
func (s *Signer) GUID() string { return s.guid }

// String describes the signer without its key.
func (s *Signer) String() string { return "signer{guid=" + s.guid + "}" }

// Signature returns the lowercase hex HMAC-SHA256 of the string to sign.
func (s *Signer) Signature(method, target string, headers []rawhttp.Header, body []byte) string {
	sum := s.sum(method, target, headers, body)
	return hex.EncodeToString(sum[:])
}

// Authorization returns the x-ms-azure-host-authorization value
// "Azure-HMAC-SHA256 <guid> <signature>" for the request as it will be
// forwarded (the agent's claims and date headers already in headers).
func (s *Signer) Authorization(method, target string, headers []rawhttp.Header, body []byte) string {
	sum := s.sum(method, target, headers, body)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	var b strings.Builder
	b.Grow(len(Scheme) + 1 + len(s.guid) + 1 + len(hexSum))
	b.WriteString(Scheme)
	b.WriteByte(' ')
	b.WriteString(s.guid)
	b.WriteByte(' ')
	b.Write(hexSum[:])
	return b.String()
}

func (s *Signer) sum(method, target string, headers []rawhttp.Header, body []byte) [sha256.Size]byte {
	mw := s.macs.Get().(*macWriter)
	mw.h.Reset()
	writeStringToSign(mw, method, target, headers, body)
	mw.flush()
	var sum [sha256.Size]byte
	copy(sum[:], mw.h.Sum(mw.sum[:0]))
	s.macs.Put(mw)
	return sum
}

// StringToSign returns the exact bytes that are MACed (host-protocol.md
// §8.2), for diagnostics and tests.
func StringToSign(method, target string, headers []rawhttp.Header, body []byte) []byte {
	var b bufWriter
	writeStringToSign(&b, method, target, headers, body)
	return b.Bytes()
}

// Verification errors returned by Verify.
var (
	ErrUnsigned     = errors.New("request carries no x-ms-azure-host-authorization header")
	ErrMalformed    = errors.New("authorization header is not \"Azure-HMAC-SHA256 <guid> <hex>\"")
	ErrUnknownKey   = errors.New("authorization header names another key")
	ErrBadSignature = errors.New("signature does not match the request")
)

// ParseAuthorization splits an authorization header value into the key
// guid and the signature hex.
func ParseAuthorization(v string) (guid, sig string, err error) {
	f := strings.Split(v, " ")
	if len(f) != 3 || f[0] != Scheme || !hostproto.ValidGUID(f[1]) || len(f[2]) != 2*sha256.Size {
		return "", "", ErrMalformed
	}
	return f[1], f[2], nil
}

// Verify recomputes the signature of a received request (headers as
// received, the authorization header included) and compares it in constant
// time. It uses the last authorization header, as the string to sign does
// for every other header.
func (s *Signer) Verify(method, target string, headers []rawhttp.Header, body []byte) error {
	v, ok := lastValue(headers, AuthorizationHeader)
	if !ok {
		return ErrUnsigned
	}
	guid, sigHex, err := ParseAuthorization(rawhttp.TrimOWS(v))
	if err != nil {
		return err
	}
	if !strings.EqualFold(guid, s.guid) {
		return ErrUnknownKey
	}
	want := s.sum(method, target, headers, body)
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return ErrMalformed
	}
	if subtle.ConstantTimeCompare(got, want[:]) != 1 {
		return ErrBadSignature
	}
	return nil
}

func lastValue(headers []rawhttp.Header, name string) (string, bool) {
	for i := len(headers) - 1; i >= 0; i-- {
		if equalFoldASCII(headers[i].Name, name) {
			return headers[i].Value, true
		}
	}
	return "", false
}

// macWriter buffers small writes in front of the HMAC so that strings reach
// it without a []byte conversion per call.
type macWriter struct {
	h   hash.Hash
	buf [512]byte
	n   int
	sum [sha256.Size]byte // scratch for Sum, so the result does not escape
}

func (m *macWriter) Write(p []byte) (int, error) {
	if m.n+len(p) > len(m.buf) {
		m.flush()
		if len(p) > len(m.buf) {
			return m.h.Write(p)
		}
	}
	m.n += copy(m.buf[m.n:], p)
	return len(p), nil
}

func (m *macWriter) WriteString(s string) (int, error) {
	n := len(s)
	for len(s) > 0 {
		if m.n == len(m.buf) {
			m.flush()
		}
		c := copy(m.buf[m.n:], s)
		m.n += c
		s = s[c:]
	}
	return n, nil
}

func (m *macWriter) writeLower(s string) {
	for i := 0; i < len(s); i++ {
		if m.n == len(m.buf) {
			m.flush()
		}
		m.buf[m.n] = toLower(s[i])
		m.n++
	}
}

func (m *macWriter) flush() {
	if m.n > 0 {
		m.h.Write(m.buf[:m.n])
		m.n = 0
	}
}
