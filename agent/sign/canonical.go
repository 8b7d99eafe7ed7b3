package sign

import (
	"bytes"
	"slices"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// AuthorizationHeader is the header that carries the signature. It is never
// part of the string to sign.
const AuthorizationHeader = hostproto.HeaderAuthorization

// writer is what the string to sign is written into: a hash.Hash on the hot
// path, a bytes.Buffer for StringToSign.
type writer interface {
	Write(p []byte) (int, error)
	WriteString(s string) (int, error)
	// writeLower writes s ASCII-lower-cased.
	writeLower(s string)
}

// bufWriter is the writer behind StringToSign and CanonicalQuery.
type bufWriter struct{ bytes.Buffer }

func (b *bufWriter) writeLower(s string) {
	for i := 0; i < len(s); i++ {
		b.WriteByte(toLower(s[i]))
	}
}

// SplitTarget splits a request-target at its first '?' into the raw path and
// the raw query (without the '?').
func SplitTarget(target string) (path, query string) {
	path, query, _ = strings.Cut(target, "?")
	return path, query
}

// writeStringToSign writes METHOD \n BODY \n HEADERS PATH \n QUERY
// (host-protocol.md §8.2).
func writeStringToSign(w writer, method, target string, headers []rawhttp.Header, body []byte) {
	w.WriteString(method)
	w.WriteString("\n")
	w.Write(body)
	w.WriteString("\n")
	writeCanonicalHeaders(w, headers)
	path, query := SplitTarget(target)
	w.WriteString(path)
	w.WriteString("\n")
	writeCanonicalQuery(w, query)
}

// maxStackItems is how many headers or query pairs are sorted without a
// heap allocation.
const maxStackItems = 48

// writeCanonicalHeaders emits "name:trim(value)\n" for every distinct
// lower-cased name in bytewise order, the last value of a duplicate winning,
// skipping the authorization header (host-protocol.md §8.3).
func writeCanonicalHeaders(w writer, headers []rawhttp.Header) {
	var stack [maxStackItems]int
	idx := stack[:0]
	for i := range headers {
		idx = append(idx, i)
	}
	// Stable order by lower-cased name keeps wire order among duplicates,
	// so the last of each run is the last on the wire.
	slices.SortStableFunc(idx, func(a, b int) int { return compareLower(headers[a].Name, headers[b].Name) })
	for k, i := range idx {
		if k+1 < len(idx) && equalFoldASCII(headers[i].Name, headers[idx[k+1]].Name) {
			continue // a later duplicate follows: last value wins
		}
		h := headers[i]
		if equalFoldASCII(h.Name, AuthorizationHeader) {
			continue
		}
		w.writeLower(h.Name)
		w.WriteString(":")
		w.WriteString(rawhttp.TrimOWS(h.Value))
		w.WriteString("\n")
	}
}

// queryPair is one key=value piece, key already known to be lower-cased on
// output. Offsets point into the raw query to avoid copies.
type queryPair struct {
	key, value string
}

// CanonicalQuery returns the canonical query of a raw query string (the part
// after the first '?'), host-protocol.md §8.4.
func CanonicalQuery(rawQuery string) string {
	var b bufWriter
	writeCanonicalQuery(&b, rawQuery)
	return b.String()
}

func writeCanonicalQuery(w writer, rawQuery string) {
	if rawQuery == "" {
		return
	}
	var stack [maxStackItems]queryPair
	pairs := stack[:0]
	for piece := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(piece, "=")
		if k == "" {
			continue
		}
		pairs = append(pairs, queryPair{k, v})
	}
	// The map of the spec is keyed by lower(key)+value and the later piece
	// wins a collision: a stable sort by that concatenation keeps wire
	// order within equal keys, so the last of each run is the winner.
	slices.SortStableFunc(pairs, compareConcat)
	first := true
	for i, p := range pairs {
		if i+1 < len(pairs) && compareConcat(p, pairs[i+1]) == 0 {
			continue
		}
		if !first {
			w.WriteString("&")
		}
		first = false
		w.writeLower(p.key)
		if p.value != "" {
			w.WriteString("=")
			w.WriteString(p.value)
		}
	}
}

// compareConcat compares lower(a.key)+a.value with lower(b.key)+b.value
// bytewise without building either string.
func compareConcat(a, b queryPair) int {
	la, lb := len(a.key)+len(a.value), len(b.key)+len(b.value)
	for i := 0; i < la && i < lb; i++ {
		ca, cb := concatByte(a, i), concatByte(b, i)
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	switch {
	case la < lb:
		return -1
	case la > lb:
		return 1
	}
	return 0
}

func concatByte(p queryPair, i int) byte {
	if i < len(p.key) {
		return toLower(p.key[i])
	}
	return p.value[i-len(p.key)]
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// compareLower compares ASCII-lower-cased strings bytewise.
func compareLower(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := toLower(a[i]), toLower(b[i])
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

func equalFoldASCII(a, b string) bool { return len(a) == len(b) && compareLower(a, b) == 0 }
