package rawhttp

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// TestRequestLineRawTargetBytes: the reader refuses, with 400
// bad-request-line, a target holding any byte outside RFC 3986 path and
// query characters (authorization.md I-24, raw-byte class), and names it.
func TestRequestLineRawTargetBytes(t *testing.T) {
	for _, tc := range []struct {
		name, target, msg string
	}{
		{"backslash", `/metadata\identity/oauth2/token`, `byte 0x5c ('\\') at offset 9`},
		{"hash", "/metadata/identity#x", "byte 0x23 ('#')"},
		{"quote", `/a"b`, `byte 0x22`},
		{"angle brackets", "/a<b>", "byte 0x3c ('<')"},
		{"braces", "/{a}", "byte 0x7b ('{')"},
		{"pipe", "/a|b", "byte 0x7c ('|')"},
		{"caret", "/a^b", "byte 0x5e ('^')"},
		{"backtick", "/a`b", "byte 0x60 ('`')"},
		{"square brackets", "/a?x[0]=1", "byte 0x5b ('[')"},
		{"tab", "/a\tb", "byte 0x09 at offset 2"},
		{"NUL", "/a\x00", "byte 0x00"},
		{"DEL", "/a\x7f", "byte 0x7f"},
		{"non-ASCII", "/metadata/\uff49dentity", "byte 0xef"},
		{"in the query", "/a?resource=https://x|y", "byte 0x7c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "GET " + tc.target + " HTTP/1.1\r\nHost: x\r\n\r\n"
			_, err := ReadHead(bufio.NewReader(strings.NewReader(raw)), Limits{})
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.Reason != ReasonBadRequestLine || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("ReadHead = %v; want 400 bad-request-line naming %q", err, tc.msg)
			}
			if err := CheckTarget(tc.target); err == nil || err.Error() != e.Error() {
				t.Errorf("CheckTarget = %v; want the reader's error", err)
			}
		})
	}
}

// TestRequestLineTargetCharacters: every RFC 3986 path and query character
// passes the reader, and so does "%" however it is followed: malformed
// escapes are the decoded class (403, authz.CheckTarget).
func TestRequestLineTargetCharacters(t *testing.T) {
	for _, target := range []string{
		"/AZaz09-._~!$&'()*+,;=:@/x?AZaz09-._~!$&'()*+,;=:@/?%41",
		"/metadata/%u0069dentity", "/a%", "/a%zz?b=%",
		"/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
	} {
		raw := "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"
		req, err := ReadHead(bufio.NewReader(strings.NewReader(raw)), Limits{})
		if err != nil || req.Target != target {
			t.Errorf("ReadHead(%q) = %v", target, err)
		}
		if err := CheckTarget(target); err != nil {
			t.Errorf("CheckTarget(%q) = %v", target, err)
		}
	}
}

// FuzzCheckTarget: CheckTarget never panics and accepts exactly the
// origin-form targets made of TargetChar bytes.
func FuzzCheckTarget(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", `/a\b`, "/\xff", "*", "", "/a b", "/%u0041"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		want := target != "" && target[0] == '/'
		for i := 0; i < len(target); i++ {
			want = want && TargetChar(target[i])
		}
		err := CheckTarget(target)
		if (err == nil) != want {
			t.Fatalf("CheckTarget(%q) = %v; want accepted %v", target, err, want)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Status != 400 || e.Reason != ReasonBadRequestLine) {
			t.Fatalf("CheckTarget(%q) = %v; want a 400 bad-request-line *Error", target, err)
		}
	})
}
