package endorse

import (
	"bufio"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// BenchmarkReadTransformIMDS measures the proxy's per-request work on a
// typical IMDS request: read the head, transform and sign.
func BenchmarkReadTransformIMDS(b *testing.B) {
	signer, err := sign.NewSigner(testKey, testGUID)
	if err != nil {
		b.Fatal(err)
	}
	const raw = "GET /metadata/instance?api-version=2021-02-01&format=json HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nMetadata: true\r\n\r\n"
	sr := strings.NewReader(raw)
	br := bufio.NewReader(sr)
	b.ReportAllocs()
	for b.Loop() {
		sr.Reset(raw)
		br.Reset(sr)
		req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Transform(req, Params{Date: testDate, Signer: signer}); err != nil {
			b.Fatal(err)
		}
	}
}
