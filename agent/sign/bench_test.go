package sign

import (
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

// A typical IMDS request as curl sends it, after the proxy added its
// headers.
var imdsHeaders = []rawhttp.Header{
	{Name: "Host", Value: "169.254.169.254"},
	{Name: "User-Agent", Value: "curl/8.5.0"},
	{Name: "Accept", Value: "*/*"},
	{Name: "Metadata", Value: "true"},
	{Name: "x-ms-azure-host-claims", Value: `{ "isRoot": "false"}`},
	{Name: "x-ms-azure-host-date", Value: "Wed, 23 Apr 2025 12:00:00 GMT"},
}

const imdsTarget = "/metadata/instance?api-version=2021-02-01&format=json"

func BenchmarkSignIMDS(b *testing.B) {
	s, err := NewSigner("4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59", "e3882f98-da8d-4410-8394-06c23462781c")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Authorization("GET", imdsTarget, imdsHeaders, nil)
	}
}

func BenchmarkVerifyIMDS(b *testing.B) {
	s, _ := NewSigner("4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59", "e3882f98-da8d-4410-8394-06c23462781c")
	signed := append(append([]rawhttp.Header(nil), imdsHeaders...), rawhttp.Header{Name: AuthorizationHeader, Value: s.Authorization("GET", imdsTarget, imdsHeaders, nil)})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify("GET", imdsTarget, signed, nil); err != nil {
			b.Fatal(err)
		}
	}
}
