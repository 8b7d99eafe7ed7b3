package signcli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/endorse"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

const usage = `usage: mspctl sign --key HEX --guid GUID --date "RFC 1123 date" [--root] [--endpoint E] < request

Reads one raw HTTP/1.1 request on stdin and writes it as the proxy would
forward it: client x-ms-azure-host-* headers removed, duplicates collapsed to
the last copy, chunked bodies de-chunked, claims, date and (unless exempt)
authorization headers appended. The two exempt requests, from root to
wireserver or hostga, are written unsigned with their body streamed as it
arrives, in its own framing.
`

// Main runs `mspctl sign` with the arguments after "sign" and returns the
// exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mspctl sign", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keyHex := fs.String("key", "", "256-bit key as 64 hex characters (required)")
	guid := fs.String("guid", "", "key guid (required)")
	date := fs.String("date", "", `x-ms-azure-host-date, e.g. "Wed, 23 Apr 2025 12:00:00 GMT" (required)`)
	root := fs.Bool("root", false, "the caller is root (isRoot claim true)")
	endpoint := fs.String("endpoint", "wireserver", "where the request goes: imds, wireserver or hostga")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mspctl sign: "+format+"\n", a...)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 2
		}
		return fail("%v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q: the request is read from stdin", fs.Arg(0))
	}
	switch {
	case *keyHex == "":
		return fail("--key is required: the 64-hex-character key")
	case *guid == "":
		return fail("--guid is required: the key's guid")
	case *date == "":
		return fail(`--date is required, e.g. --date "Wed, 23 Apr 2025 12:00:00 GMT"`)
	}
	if t, err := time.Parse(hostproto.DateLayout, *date); err != nil || t.Format(hostproto.DateLayout) != *date {
		return fail(`--date %q: want RFC 1123 in GMT with a two-digit day, e.g. "Wed, 23 Apr 2025 12:00:00 GMT"`, *date)
	}
	ep, err := hostproto.ParseEndpoint(*endpoint)
	if err != nil {
		return fail("--endpoint: %v", err)
	}
	signer, err := sign.NewSigner(*keyHex, *guid)
	if err != nil {
		return fail("--key/--guid: %v", err)
	}

	br := bufio.NewReader(stdin)
	req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
	if errors.Is(err, io.EOF) {
		return fail("request: no request line on stdin")
	}
	if err != nil {
		return fail("request: %v", err)
	}
	// The proxy's strict reading of the target (authorization.md I-24):
	// what it refuses is never signed.
	if err := authz.CheckTarget(req.Target); err != nil {
		return fail("request: %v", err)
	}
	p := endorse.Params{Endpoint: ep, IsRoot: *root, Date: *date, Signer: signer}
	res, err := endorse.Prepare(req, br, p)
	if err != nil {
		return fail("request: %v", err)
	}
	bw := bufio.NewWriter(stdout)
	if _, err := endorse.Write(bw, req, br, res, rawhttp.StreamOptions{}); err != nil {
		return fail("writing the request: %v", err)
	}
	if err := bw.Flush(); err != nil {
		return fail("writing the request: %v", err)
	}
	return 0
}
