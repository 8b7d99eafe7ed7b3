package authz

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestCanonicalParse(t *testing.T) {
	for _, tc := range []struct {
		target string
		segs   []string
		query  [][2]string
		str    string
	}{
		{"/", []string{}, [][2]string{}, "/"},
		{"/metadata/instance", []string{"metadata", "instance"}, [][2]string{}, "/metadata/instance"},
		{"/metadata/instance/", []string{"metadata", "instance"}, [][2]string{}, "/metadata/instance/"},
		{"/Metadata/INSTANCE?API-Version=2021-02-01&Format=JSON", []string{"metadata", "instance"}, [][2]string{{"api-version", "2021-02-01"}, {"format", "json"}}, "/metadata/instance?api-version=2021-02-01&format=json"},
		{"/a;p=1/b;q", []string{"a", "b"}, [][2]string{}, "/a/b"},
		{"/a/;p", []string{"a"}, [][2]string{}, "/a/"},
		{"/a%2Fb", []string{"a", "b"}, [][2]string{}, "/a/b"},
		{"/a+b?x=a+b", []string{"a+b"}, [][2]string{{"x", "a+b"}}, "/a+b?x=a+b"},
		{"/a?&&=v&k&k2=&=", []string{"a"}, [][2]string{{"k", ""}, {"k2", ""}}, "/a?k=&k2="},
		{"/a?k=v=w", []string{"a"}, [][2]string{{"k", "v=w"}}, "/a?k=v%3Dw"},
		{"/s%3Fa=1&b=2?c=3", []string{"s"}, [][2]string{{"c", "3"}, {"a", "1"}, {"b", "2"}}, "/s?c=3&a=1&b=2"},
		{"/s%3F", []string{"s"}, [][2]string{}, "/s"},
		{"/x?q=%3F%26", []string{"x"}, [][2]string{{"q", "?&"}}, "/x?q=%3F%26"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var c Canonical
			if err := c.Parse(tc.target); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Segments(); !reflect.DeepEqual(got, tc.segs) {
				t.Errorf("segments = %q; want %q", got, tc.segs)
			}
			if got := c.Query(); !reflect.DeepEqual(got, tc.query) {
				t.Errorf("query = %q; want %q", got, tc.query)
			}
			if got := c.String(); got != tc.str {
				t.Errorf("String = %q; want %q", got, tc.str)
			}
		})
	}
}

func TestCanonicalRejects(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   error
	}{
		{"/a%252Fb", errPercent25},
		{"/a%zz", errBadEscape},
		{"/a%4", errBadEscape},
		{"/caf%C3%A9", errHighByte},
		{"/a%5Cb", errBackslash},
		{"/a./b", errTrailingDot},
		{"/a%20", errTrailingDot},
		{"/a.;x/b", errTrailingDot},
		{"/a;x./b", errTrailingDot},
		{"/a?x=%zz", errQueryEscape},
		{"/a?x=%C3%A9", errQueryHighByte},
		{"//a", errRawDoubleSlash},
		{"/a//", errRawDoubleSlash},
		{"/a/%2F", errDecodedDouble},
		{"/a/..", errDotDot},
		{"/a/%2E%2e", errDotDot},
		{"/a/.", errDotSegment},
		{"/a/./b", errDotSegment},
		{"/a/.;x/b", errDotSegment},
		{"/a/;x/b", errEmptySegment},
		{"/a%09", errControl},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var c Canonical
			err := c.Parse(tc.target)
			if err != tc.want || !errors.Is(err, ErrPathRejected) {
				t.Errorf("Parse = %v; want %v matching ErrPathRejected", err, tc.want)
			}
			var te *TargetError
			if err := CheckTarget(tc.target); !errors.As(err, &te) || te.Status != 403 || te.Reason != ReasonPathRejected || !errors.Is(err, ErrPathRejected) {
				t.Errorf("CheckTarget = %v; want a 403 path-rejected *TargetError", err)
			}
		})
	}
}

// TestCanonicalRawClass checks the raw-byte class: Parse refuses with a
// 400-class error that is not ErrPathRejected, as the request reader does.
func TestCanonicalRawClass(t *testing.T) {
	for _, target := range []string{"", "*", "metadata", "http://169.254.169.254/", "/a b", "/a\\b", "/a\x01", "/\xc3\xa9"} {
		t.Run(target, func(t *testing.T) {
			var c Canonical
			err := c.Parse(target)
			if _, raw := err.(rawError); !raw || errors.Is(err, ErrPathRejected) {
				t.Errorf("Parse = %v; want a raw-class error", err)
			}
			var te *TargetError
			if err := CheckTarget(target); !errors.As(err, &te) || te.Status != 400 || te.Reason != ReasonBadRequestLine {
				t.Errorf("CheckTarget = %v; want a 400 bad-request-line *TargetError", err)
			}
		})
	}
}

// TestCanonicalReuse: a reused Canonical forgets the previous request,
// whether the next parse succeeds or is rejected: no segment or query pair
// of the earlier target survives.
func TestCanonicalReuse(t *testing.T) {
	var c Canonical
	if err := c.Parse("/A/b/c/?X=1&y=2%3Fz=3"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Segments(), c.Query()); got != "[a b c] [[x 1] [y 2?z=3]]" {
		t.Fatalf("first parse: %s", got)
	}
	if err := c.Parse("/d"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %v %v", c.String(), c.Segments(), c.Query()); got != "/d [d] []" {
		t.Errorf("after reuse: %s; want /d [d] []", got)
	}
	if err := c.Parse("/a/b/c/?x=1&y=2"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"/a/./b", "/e/..", "/f//g", "nope"} {
		if err := c.Parse(bad); err == nil {
			t.Fatalf("Parse(%q) accepted", bad)
		}
		for _, s := range c.Segments() {
			if s == "b" || s == "c" {
				t.Errorf("after rejecting %q, segment %q of the previous target survives: %v", bad, s, c.Segments())
			}
		}
		if q := c.Query(); len(q) != 0 {
			t.Errorf("after rejecting %q, query %v of the previous target survives", bad, q)
		}
		if err := c.Parse("/a/b/c/?x=1&y=2"); err != nil {
			t.Fatal(err)
		}
	}
}
