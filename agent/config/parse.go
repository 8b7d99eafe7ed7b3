package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Error is one configuration problem, named by its JSON path ("$" is the
// document, "limits.dialSeconds", "settings.imds.rules.roles[0].name").
type Error struct {
	File    string // "" when parsing bytes
	Path    string
	Message string
}

func (e *Error) Error() string {
	if e.File == "" {
		return "config: " + e.Path + ": " + e.Message
	}
	return "config " + e.File + ": " + e.Path + ": " + e.Message
}

// Parse reads a configuration strictly: every field is optional and takes
// its default, an unknown field, a duplicate key, a wrong type or a bad
// value is an *Error naming the JSON path and the fix. A UTF-8 BOM is
// tolerated.
func Parse(data []byte) (*Config, error) {
	c := Default()
	c.Hash = sha256.Sum256(data)
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	switch {
	case len(data) > MaxFileSize:
		return nil, &Error{Path: "$", Message: fmt.Sprintf("%d bytes: larger than the %d byte limit", len(data), MaxFileSize)}
	case !utf8.Valid(data):
		return nil, &Error{Path: "$", Message: "not valid UTF-8: save the file as UTF-8"}
	case len(bytes.TrimSpace(data)) == 0:
		return nil, &Error{Path: "$", Message: `empty file: write {} for the defaults, or delete the file`}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	r := &reader{dec: dec}
	if err := r.object("", topFields, func(key, path string) error { return r.top(c, key, path) }); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{Path: "$", Message: fmt.Sprintf("trailing data after the JSON object at byte %d: keep one object", dec.InputOffset())}
	}
	if c.Limits.MaxConnectionsPerUID > c.Limits.MaxConnections {
		return nil, &Error{Path: "limits.maxConnectionsPerUid", Message: fmt.Sprintf("%d is more than limits.maxConnections %d: lower it or raise maxConnections", c.Limits.MaxConnectionsPerUID, c.Limits.MaxConnections)}
	}
	return c, nil
}

var (
	topFields      = []string{"listen", "stateDir", "logDir", "logLevel", "endpoints", "cgroup", "bpffsDir", "pollIntervalSeconds", "netnsPolicy", "limits", "settings"}
	endpointFields = []string{"imds", "wireServer", "hostGAPlugin"}
	limitFields    = []string{"headerReadSeconds", "bodyReadSeconds", "idleSeconds", "dialSeconds", "responseHeaderSeconds", "bodyIdleSeconds", "maxConnections", "maxConnectionsPerUid"}
	settingsFields = []string{"imds", "wireServer"}
)

func (r *reader) top(c *Config, key, path string) error {
	var err error
	switch key {
	case "listen":
		var ap netip.AddrPort
		if ap, err = r.addrPort(path, "127.0.0.1:3080"); err == nil {
			if !ap.Addr().Unmap().IsLoopback() {
				return &Error{Path: path, Message: fmt.Sprintf("%q: not a loopback address: the listener binds loopback only, use 127.0.0.1:PORT", ap)}
			}
			c.Listen = ap
		}
	case "stateDir":
		c.StateDir, err = r.absPath(path)
	case "logDir":
		c.LogDir, err = r.absPath(path)
	case "bpffsDir":
		c.BPFFSDir, err = r.absPath(path)
	case "cgroup":
		c.Cgroup, err = r.absPath(path)
	case "logLevel":
		var s string
		if s, err = r.str(path); err == nil {
			switch strings.ToLower(s) {
			case "error", "warn", "warning", "info", "debug", "trace":
				c.LogLevel, _ = logrus.ParseLevel(s)
			default:
				return &Error{Path: path, Message: fmt.Sprintf("%q: want error, warn, info, debug or trace", s)}
			}
		}
	case "pollIntervalSeconds":
		c.PollInterval, err = r.seconds(path, 1, 3600)
	case "netnsPolicy":
		var s string
		if s, err = r.str(path); err == nil {
			switch p := NetnsPolicy(s); p {
			case NetnsPass, NetnsDeny:
				c.NetnsPolicy = p
			default:
				return &Error{Path: path, Message: fmt.Sprintf("%q: want pass or deny", s)}
			}
		}
	case "endpoints":
		err = r.object(path, endpointFields, func(key, p string) error {
			var ap netip.AddrPort
			var err error
			switch key {
			case "imds":
				ap, err = r.addrPort(p, "169.254.169.254:80")
				c.Endpoints.IMDS = ap
			case "wireServer":
				ap, err = r.addrPort(p, "168.63.129.16:80")
				c.Endpoints.WireServer = ap
			case "hostGAPlugin":
				ap, err = r.addrPort(p, "168.63.129.16:32526")
				c.Endpoints.HostGAPlugin = ap
			}
			return err
		})
	case "limits":
		err = r.object(path, limitFields, func(key, p string) error { return r.limit(&c.Limits, key, p) })
	case "settings":
		err = r.object(path, settingsFields, func(key, p string) error {
			it, err := r.item(p)
			switch key {
			case "imds":
				c.Settings.IMDS = it
			case "wireServer":
				c.Settings.WireServer = it
			}
			return err
		})
	}
	return err
}

func (r *reader) limit(l *Limits, key, path string) error {
	var err error
	switch key {
	case "headerReadSeconds":
		l.HeaderRead, err = r.seconds(path, 1, 3600)
	case "bodyReadSeconds":
		l.BodyRead, err = r.seconds(path, 1, 3600)
	case "idleSeconds":
		l.Idle, err = r.seconds(path, 1, 3600)
	case "dialSeconds":
		l.Dial, err = r.seconds(path, 1, 300)
	case "responseHeaderSeconds":
		l.ResponseHeader, err = r.seconds(path, 1, 3600)
	case "bodyIdleSeconds":
		l.BodyIdle, err = r.seconds(path, 1, 3600)
	case "maxConnections":
		l.MaxConnections, err = r.integer(path, 1, 1<<20)
	case "maxConnectionsPerUid":
		l.MaxConnectionsPerUID, err = r.integer(path, 1, 1<<20)
	}
	return err
}

// reader walks the JSON token stream, so that every error knows its path.
type reader struct {
	dec *json.Decoder
}

func (r *reader) syntax(path string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &Error{Path: rootPath(path), Message: fmt.Sprintf("invalid JSON near byte %d: %v", r.dec.InputOffset(), err)}
}

// joinKey appends an object key to a path; a key that is not a plain
// name is quoted (["a b"]), so that the path stays one readable line.
func joinKey(path, key string) string {
	plain := key != ""
	for _, c := range key {
		plain = plain && (c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z')
	}
	switch {
	case !plain:
		return rootPath(path) + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

func rootPath(p string) string {
	if p == "" {
		return "$"
	}
	return p
}

// token reads the next token; a delimiter other than want (or a scalar)
// is a type error.
func (r *reader) token(path string) (json.Token, error) {
	t, err := r.dec.Token()
	if err != nil {
		return nil, r.syntax(path, err)
	}
	return t, nil
}

func kind(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null (remove the field to take the default)"
	}
	return "something else"
}

// object reads an object, calling field for each known key and failing on
// an unknown or duplicate one.
func (r *reader) object(path string, fields []string, field func(key, path string) error) error {
	t, err := r.token(path)
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return &Error{Path: rootPath(path), Message: "want an object, got " + kind(t)}
	}
	seen := map[string]bool{}
	for r.dec.More() {
		t, err := r.token(path)
		if err != nil {
			return err
		}
		key := t.(string) // object keys are strings
		p := joinKey(path, key)
		if seen[key] {
			return &Error{Path: p, Message: "duplicate key: keep one"}
		}
		seen[key] = true
		known := false
		for _, f := range fields {
			known = known || f == key
		}
		if !known {
			return &Error{Path: p, Message: "unknown field: want one of " + strings.Join(fields, ", ")}
		}
		if err := field(key, p); err != nil {
			return err
		}
	}
	if _, err := r.token(path); err != nil { // '}'
		return err
	}
	return nil
}

func (r *reader) str(path string) (string, error) {
	t, err := r.token(path)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", &Error{Path: path, Message: "want a string, got " + kind(t)}
	}
	return s, nil
}

func (r *reader) absPath(path string) (string, error) {
	s, err := r.str(path)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
		return "", &Error{Path: path, Message: fmt.Sprintf("%q: want an absolute path such as /var/lib/msp-agent", s)}
	}
	return filepath.Clean(s), nil
}

func (r *reader) addrPort(path, example string) (netip.AddrPort, error) {
	s, err := r.str(path)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, &Error{Path: path, Message: fmt.Sprintf("%q: want IP:PORT such as %s", s, example)}
	}
	return ap, nil
}

func (r *reader) integer(path string, lo, hi int) (int, error) {
	t, err := r.token(path)
	if err != nil {
		return 0, err
	}
	n, ok := t.(json.Number)
	if !ok {
		return 0, &Error{Path: path, Message: fmt.Sprintf("want a whole number %d-%d, got %s", lo, hi, kind(t))}
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		return 0, &Error{Path: path, Message: fmt.Sprintf("%s: want a whole number %d-%d", n, lo, hi)}
	}
	return int(v), nil
}

func (r *reader) seconds(path string, lo, hi int) (time.Duration, error) {
	n, err := r.integer(path, lo, hi)
	return time.Duration(n) * time.Second, err
}

// item reads a settings item with rulefile.ParseSettingsItem; its problems
// are reported under the item's path, on one line.
func (r *reader) item(path string) (*hostproto.AuthorizationItem, error) {
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return nil, r.syntax(path, err)
	}
	it, err := rulefile.ParseSettingsItem(raw)
	var ve *rulefile.ValidationError
	switch {
	case errors.As(err, &ve):
		first := ve.Problems[0]
		p := path
		if first.Path != "$" {
			p += "." + first.Path
		}
		msg := first.Message
		if n := len(ve.Problems) - 1; n > 0 {
			msg += fmt.Sprintf(" (and %d more problem(s): run mspctl policy validate on the item)", n)
		}
		return nil, &Error{Path: p, Message: msg}
	case err != nil:
		return nil, &Error{Path: path, Message: err.Error()}
	}
	return &it, nil
}
