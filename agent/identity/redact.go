package identity

import "bytes"

// redacted replaces every secret the redactor recognises. The surrounding
// text (the flag, the key, the header name) is kept so that the audit log
// still shows what kind of value was there.
const redacted = "[REDACTED]"

// Redact joins args with spaces and replaces the secrets in them by
// [REDACTED] (agent.md §5.1). It recognises:
//
//   - key=value pairs whose key names a secret (sig, key, pwd, pass, auth,
//     or containing password, passwd, passphrase, secret, token, signature,
//     credential, apikey, accesskey, accountkey, privatekey, sharedaccess,
//     connectionstring), case-insensitively, ignoring '-', '_' and '.':
//     SAS "sig=", "--password=x", "AccountKey=…;", "client_secret=…";
//   - the same names as quoted JSON keys: {"password": "x"};
//   - a flag naming a secret followed by its value as the next argument or
//     word: "--password x", "--client-secret x", "--sas-token x", and "-p x"
//     (a port or a directory is redacted too: leaking a password costs more
//     than hiding a port); an attached "-pSECRET" is not recognised, since
//     it cannot be told apart from combined short flags;
//   - the password of "-u user:pass", "--user user:pass", "--proxy-user"
//     and "-uuser:pass" (curl), and of URL user information
//     "scheme://user:pass@host";
//   - header arguments "Authorization: …", "Proxy-Authorization: …",
//     "Cookie: …" and headers named like a secret (X-Api-Key): the whole
//     value;
//   - "Bearer x" and "Basic x" anywhere;
//   - JWTs and other base64url JSON (words starting with "eyJ");
//   - base64 runs of at least 40 characters ending in '=' padding (storage
//     account keys, HMAC keys);
//   - PEM blocks, from "-----BEGIN" to the matching "-----END …-----" or to
//     the end of the argument.
//
// Anything else is kept; a secret in a form not listed above is not
// recognised. Redact never panics and accepts any bytes.
func Redact(args []string) string {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return string(appendRedacted(nil, bs))
}

// RedactText applies the in-text rules of Redact to one string (the
// flag-and-next-argument rules need the argument list). It returns s
// itself when nothing was redacted.
func RedactText(s string) string {
	out := appendRedactedText(nil, []byte(s))
	if string(out) == s {
		return s
	}
	return string(out)
}

// argKind says how the argument after a flag is redacted.
type argKind uint8

const (
	argPlain    argKind = iota
	argSecret           // the whole argument
	argUserinfo         // the part after the first ':'
)

// appendRedacted appends args joined with spaces and redacted to dst.
func appendRedacted(dst []byte, args [][]byte) []byte {
	next := argPlain
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ' ')
		}
		kind := next
		next = argPlain
		switch {
		case kind == argSecret:
			dst = append(dst, redacted...)
			continue
		case kind == argUserinfo || attachedUserFlag(a):
			if c := bytes.IndexByte(a, ':'); c >= 0 {
				dst = append(dst, a[:c+1]...)
				dst = append(dst, redacted...)
				continue
			}
		}
		if n := secretHeader(a); n > 0 {
			dst = append(dst, a[:n]...)
			dst = append(dst, ' ')
			dst = append(dst, redacted...)
			continue
		}
		next = flagKind(a)
		dst = appendRedactedText(dst, a)
	}
	return dst
}

// attachedUserFlag reports curl's "-uuser:pass".
func attachedUserFlag(a []byte) bool {
	return len(a) > 2 && a[0] == '-' && a[1] == 'u' && bytes.IndexByte(a, ':') > 0
}

// flagKind classifies a whole argument that is a flag without '='.
func flagKind(a []byte) argKind {
	if len(a) < 2 || a[0] != '-' || bytes.IndexByte(a, '=') >= 0 {
		return argPlain
	}
	name := bytes.TrimLeft(a, "-")
	switch string(name) {
	case "u", "user", "proxy-user", "U":
		return argUserinfo
	case "p":
		return argSecret
	}
	if secretName(name) {
		return argSecret
	}
	return argPlain
}

// secretHeader returns the length of "Name:" when a is a header argument
// whose value is a secret, and 0 otherwise.
func secretHeader(a []byte) int {
	n := 0
	for n < len(a) && isTokenChar(a[n]) {
		n++
	}
	if n == 0 || n >= len(a) || a[n] != ':' {
		return 0
	}
	if !secretName(a[:n]) && !containsFold(a[:n], "authorization") && !containsFold(a[:n], "cookie") {
		return 0
	}
	return n + 1
}

// appendRedactedText appends one argument (or a whole setproctitle line)
// with the in-text rules of Redact applied.
func appendRedactedText(dst, s []byte) []byte {
	last := 0
	cut := func(from, to int) {
		dst = append(dst, s[last:from]...)
		dst = append(dst, redacted...)
		last = to
	}
	for i := 0; i < len(s); {
		if s[i] == '-' && bytes.HasPrefix(s[i:], pemBegin) {
			end := pemEnd(s, i)
			cut(i, end)
			i = end
			continue
		}
		if !isKeyChar(s[i]) && s[i] != '+' && s[i] != '/' || i > 0 && !isBoundary(s[i-1]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isKeyChar(s[j]) {
			j++
		}
		word := s[i:j]
		switch {
		case len(word) >= 10 && bytes.HasPrefix(word, []byte("eyJ")):
			cut(i, j)
			i = j
		case j < len(s) && isBlank(s[j]) && (equalFold(word, "bearer") || equalFold(word, "basic")):
			k := skipBlank(s, j)
			e := k
			for e < len(s) && !isBlank(s[e]) && s[e] != '"' && s[e] != '\'' {
				e++
			}
			if e > k {
				cut(k, e)
			}
			i = e
		case j < len(s) && s[j] == '=' && secretName(word):
			e := valueEnd(s, j+1)
			if e > j+1 {
				cut(j+1, e)
			}
			i = e
		case j < len(s) && s[j] == '"' && i > 0 && s[i-1] == '"' && secretName(word):
			i = j + 1
			k := skipBlank(s, j+1)
			if k < len(s) && s[k] == ':' {
				k = skipBlank(s, k+1)
				if k < len(s) && s[k] == '"' {
					e := quotedEnd(s, k+1)
					if e > k+1 {
						cut(k+1, e)
					}
					i = e
				}
			}
		case j+2 < len(s) && s[j] == ':' && s[j+1] == '/' && s[j+2] == '/':
			i = redactUserinfo(s, j+3, cut)
		case len(word) > 0 && word[0] == '-' && j < len(s) && isBlank(s[j]) && flagKind(word) != argPlain:
			k := skipBlank(s, j)
			e := k
			for e < len(s) && !isBlank(s[e]) {
				e++
			}
			if e > k {
				if flagKind(word) == argUserinfo {
					if c := bytes.IndexByte(s[k:e], ':'); c >= 0 {
						cut(k+c+1, e)
					}
				} else {
					cut(k, e)
				}
			}
			i = e
		default:
			if e := base64KeyEnd(s, i); e > 0 {
				cut(i, e)
				i = e
			} else if j > i {
				i = j
			} else {
				i++
			}
		}
	}
	return append(dst, s[last:]...)
}

var (
	pemBegin  = []byte("-----BEGIN")
	pemEndTag = []byte("-----END")
)

// pemEnd returns the index after the "-----END …-----" that closes the
// block starting at i, or len(s).
func pemEnd(s []byte, i int) int {
	k := bytes.Index(s[i+len(pemBegin):], pemEndTag)
	if k < 0 {
		return len(s)
	}
	k += i + len(pemBegin) + len(pemEndTag)
	if e := bytes.Index(s[k:], []byte("-----")); e >= 0 {
		return k + e + len("-----")
	}
	return len(s)
}

// redactUserinfo cuts the password of the URL authority starting at k and
// returns the index where the authority ends.
func redactUserinfo(s []byte, k int, cut func(from, to int)) int {
	end := k
	for end < len(s) && !isBlank(s[end]) && bytes.IndexByte([]byte("/?#\"'"), s[end]) < 0 {
		end++
	}
	at := bytes.LastIndexByte(s[k:end], '@')
	if at < 0 {
		return end
	}
	at += k
	if c := bytes.IndexByte(s[k:at], ':'); c >= 0 && k+c+1 < at {
		cut(k+c+1, at)
	}
	return end
}

// base64KeyEnd returns the end of a padded base64 run of at least 40
// characters starting at i, or 0.
func base64KeyEnd(s []byte, i int) int {
	e := i
	for e < len(s) && isBase64(s[e]) {
		e++
	}
	n := e - i
	pad := 0
	for e < len(s) && s[e] == '=' && pad < 2 {
		e++
		pad++
	}
	if n < 40 || pad == 0 || e < len(s) && isBase64(s[e]) {
		return 0
	}
	return e
}

// valueEnd returns where a key=value value starting at k ends.
func valueEnd(s []byte, k int) int {
	if k < len(s) && (s[k] == '"' || s[k] == '\'') {
		if e := bytes.IndexByte(s[k+1:], s[k]); e >= 0 {
			return k + 1 + e + 1
		}
		return len(s)
	}
	e := k
	for e < len(s) && !isBlank(s[e]) && bytes.IndexByte([]byte("&;\"',"), s[e]) < 0 {
		e++
	}
	return e
}

// quotedEnd returns the index of the closing quote of a JSON string whose
// content starts at k (or len(s)).
func quotedEnd(s []byte, k int) int {
	for e := k; e < len(s); e++ {
		switch s[e] {
		case '\\':
			e++
		case '"':
			return e
		}
	}
	return len(s)
}

// secretNames are compared whole, secretParts as substrings, with the
// name lower-cased and stripped of '-', '_' and '.'.
var (
	secretNames = []string{"sig", "key", "pwd", "pw", "pass", "auth"}
	secretParts = []string{"password", "passwd", "passphrase", "secret", "token", "signature",
		"credential", "apikey", "accesskey", "accountkey", "privatekey", "sharedaccess",
		"connectionstring"}
)

// secretName reports whether a key, flag or header name names a secret.
func secretName(name []byte) bool {
	var buf [64]byte
	n := 0
	for _, c := range bytes.TrimLeft(name, "-") {
		if c == '-' || c == '_' || c == '.' {
			continue
		}
		if n == len(buf) {
			break
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	norm := buf[:n]
	for _, w := range secretNames {
		if string(norm) == w {
			return true
		}
	}
	for _, w := range secretParts {
		if bytes.Contains(norm, []byte(w)) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word w,
// ignoring case.
func containsFold(s []byte, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if equalFold(s[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// equalFold compares s with the ASCII word w, ignoring case (Unicode
// folding matches a little more, which only redacts more).
func equalFold(s []byte, w string) bool { return bytes.EqualFold(s, []byte(w)) }

func skipBlank(s []byte, k int) int {
	for k < len(s) && isBlank(s[k]) {
		k++
	}
	return k
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isKeyChar is a character of a key, flag or base64url word.
func isKeyChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// isBase64 is a character of standard base64 (without padding).
func isBase64(c byte) bool { return isAlnum(c) || c == '+' || c == '/' }

// isBoundary reports whether a word may start after c.
func isBoundary(c byte) bool { return !isKeyChar(c) && !isBase64(c) && c != '=' && c != '%' }

// isTokenChar is a character of an HTTP header name.
func isTokenChar(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }
