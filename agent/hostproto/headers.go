package hostproto

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
