package hostproto

// Names of the headers the agent owns (host-protocol.md §8.1). Every client
// header starting with HeaderPrefix, in any case, is removed by the proxy.
const (
	HeaderPrefix        = "x-ms-azure-host-"
	HeaderClaims        = "x-ms-azure-host-claims"
	HeaderDate          = "x-ms-azure-host-date"
	HeaderAuthorization = "x-ms-azure-host-authorization"
)

// DateLayout is the format of x-ms-azure-host-date, parsed and printed:
// RFC 1123 in GMT with a two-digit day, e.g. "Wed, 23 Apr 2025 12:00:00 GMT"
// (host-protocol.md §7.4).
const DateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// Values of x-ms-azure-host-claims, byte for byte as GPA sends them: one
// space after '{', none before '}', the boolean as a quoted string
// (host-protocol.md §8.1).
const (
	ClaimsRoot    = `{ "isRoot": "true"}`
	ClaimsNonRoot = `{ "isRoot": "false"}`
)

// Claims returns the claims header value for a caller.
func Claims(isRoot bool) string {
	if isRoot {
		return ClaimsRoot
	}
	return ClaimsNonRoot
}

// Exempt reports whether a request is one of the two that are never signed
// (host-protocol.md §8.8): matched on the method (case-sensitive) and the
// whole request-target, ASCII-lower-cased (no Unicode folding).
func Exempt(method, target string) bool {
	switch method {
	case "PUT":
		return equalLowerASCII(target, "/vmagentlog")
	case "POST":
		return equalLowerASCII(target, "/machine/?comp=telemetrydata")
	}
	return false
}

// equalLowerASCII reports whether s, ASCII-lower-cased, equals lower.
func equalLowerASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lower[i] {
			return false
		}
	}
	return true
}
