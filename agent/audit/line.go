package audit

import (
	"strconv"
	"unicode/utf8"

	"github.com/mspguest/msp/agent/identity"
)

// timeLayout is RFC 3339 with a fixed nine-digit fraction, so that lines
// sort by time as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// appendLine appends e as one JSON object and a newline: exactly the keys
// of Entry's json tags, in their order, with time in UTC, groups as []
// when there are none and secrets in the target redacted. It is written by hand because it runs for every
// request and encoding/json would reflect on each.
func appendLine(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	b = appendField(b, "id", e.ID)
	b = appendField(b, "endpoint", e.Endpoint)
	b = appendField(b, "method", e.Method)
	// The target is the client's: a secret in its query (a SAS sig=, a
	// token) is redacted like one in a command line.
	b = appendField(b, "target", identity.RedactText(e.Target))
	b = appendField(b, "decision", e.Decision)
	b = appendField(b, "reason", e.Reason)
	b = appendField(b, "privilege", e.Privilege)
	b = appendField(b, "role", e.Role)
	b = appendField(b, "identity", e.Identity)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latencyUs":`...)
	b = strconv.AppendInt(b, e.LatencyUs, 10)
	b = append(b, `,"signed":`...)
	b = strconv.AppendBool(b, e.Signed)

	c := &e.Caller
	b = append(b, `,"caller":{"uid":`...)
	b = strconv.AppendUint(b, uint64(c.UID), 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendUint(b, uint64(c.GID), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(c.PID), 10)
	b = appendField(b, "user", c.User)
	b = append(b, `,"groups":[`...)
	for i, g := range c.Groups {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, g)
	}
	b = append(b, ']')
	b = appendField(b, "exe", c.Exe)
	b = appendField(b, "process", c.Process)
	b = appendField(b, "cmdline", c.CmdLine)
	b = append(b, `,"root":`...)
	b = strconv.AppendBool(b, c.Root)
	return append(b, "}}\n"...)
}

// appendField appends ,"key":"value".
func appendField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters are escaped
// and invalid UTF-8 becomes U+FFFD, as encoding/json does; '<', '>' and
// '&' are kept (no HTML escaping).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
