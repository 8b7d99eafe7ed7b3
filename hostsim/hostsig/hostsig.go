package hostsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"sort"
	"strings"
)

// Header is one received header field; Value may carry surrounding white
// space, which canonicalization trims.
type Header struct {
	Name  string
	Value string
}

// Scheme is the authorization scheme and AuthorizationName the header that
// carries the signature (never part of the string to sign).
const (
	Scheme            = "Azure-HMAC-SHA256"
	AuthorizationName = "x-ms-azure-host-authorization"
)

// CanonicalHeaders is §8.3: lower-cased names, last value wins, sorted
// bytewise, authorization left out, each line "name:trim(value)\n".
func CanonicalHeaders(headers []Header) string {
	last := make(map[string]string, len(headers))
	for _, h := range headers {
		last[strings.ToLower(h.Name)] = h.Value
	}
	names := make([]string, 0, len(last))
	for n := range last {
		if n != AuthorizationName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + ":" + strings.Trim(last[n], " \t") + "\n")
	}
	return b.String()
}

// CanonicalQuery is §8.4 for the raw query (after the first '?').
func CanonicalQuery(query string) string {
	type pair struct{ k, v string }
	m := map[string]pair{}
	for _, piece := range strings.Split(query, "&") {
		k, v := piece, ""
		if i := strings.IndexByte(piece, '='); i >= 0 {
			k, v = piece[:i], piece[i+1:]
		}
		if k == "" {
			continue
		}
		k = strings.ToLower(k)
		m[k+v] = pair{k, v} // a later piece wins the collision
	}
	keys := make([]string, 0, len(m))
	for mk := range m {
		keys = append(keys, mk)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, mk := range keys {
		p := m[mk]
		if p.v == "" {
			out = append(out, mk)
		} else {
			out = append(out, p.k+"="+p.v)
		}
	}
	return strings.Join(out, "&")
}

// splitTarget returns the path (exactly as received) and the query after
// the first '?'.
func splitTarget(target string) (path, query string) {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:]
	}
	return target, ""
}

// Head and Tail are the string to sign around the body: Head + body + Tail
// (§8.2), so a streamed body can be MACed without being held.
func Head(method string) string { return method + "\n" }

func Tail(target string, headers []Header) string {
	path, query := splitTarget(target)
	return "\n" + CanonicalHeaders(headers) + path + "\n" + CanonicalQuery(query)
}

// StringToSign is §8.2.
func StringToSign(method, target string, headers []Header, body []byte) []byte {
	return []byte(Head(method) + string(body) + Tail(target, headers))
}

// MAC is HMAC-SHA256 of the string to sign.
func MAC(key []byte, method, target string, headers []Header, body []byte) []byte {
	m := NewMAC(key, method)
	m.Write(body)
	return m.Sum(target, headers)
}

// Streaming MAC: NewMAC, Write the body, Sum.
type Streaming struct{ h hash.Hash }

// NewMAC starts a MAC over a request whose body will be written next.
func NewMAC(key []byte, method string) *Streaming {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(Head(method)))
	return &Streaming{h: h}
}

func (s *Streaming) Write(p []byte) (int, error) { return s.h.Write(p) }

// Sum ends the string to sign and returns the MAC.
func (s *Streaming) Sum(target string, headers []Header) []byte {
	s.h.Write([]byte(Tail(target, headers)))
	return s.h.Sum(nil)
}

// Authorization is the §8.5 header value for a MAC.
func Authorization(guid string, mac []byte) string {
	return Scheme + " " + guid + " " + hex.EncodeToString(mac)
}

// Errors of ParseAuthorization and Check.
var (
	ErrMalformed = errors.New(`authorization: want "Azure-HMAC-SHA256 <guid> <64 lowercase hex digits>"`)
	ErrMismatch  = errors.New("authorization: MAC does not match the request as received")
)

// Parsed is a parsed authorization header.
type Parsed struct {
	GUID string // lower-cased
	MAC  []byte // 32 bytes
}

// ParseAuthorization reads "Azure-HMAC-SHA256 <guid> <hex>" with single
// spaces (surrounding white space of the field ignored).
func ParseAuthorization(v string) (Parsed, error) {
	f := strings.Split(strings.Trim(v, " \t"), " ")
	if len(f) != 3 || f[0] != Scheme || !isGUID(f[1]) || len(f[2]) != 2*sha256.Size {
		return Parsed{}, ErrMalformed
	}
	mac, err := hex.DecodeString(f[2])
	if err != nil {
		return Parsed{}, ErrMalformed
	}
	return Parsed{GUID: strings.ToLower(f[1]), MAC: mac}, nil
}

// isGUID checks the 8-4-4-4-12 hex form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Equal is how a presented MAC is compared with the expected one:
// constant time in the content (hmac.Equal).
type Equal func(a, b []byte) bool

// Check compares a presented MAC with the expected one using eq (nil:
// hmac.Equal).
func Check(eq Equal, presented, expected []byte) error {
	if eq == nil {
		eq = hmac.Equal
	}
	if !eq(presented, expected) {
		return ErrMismatch
	}
	return nil
}
