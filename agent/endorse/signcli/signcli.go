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

const usage = `usage: mspctl sign --key HEX --guid GUID --date "RFC 1123 date" [--root] < request

Reads one raw HTTP/1.1 request on stdin and writes it as the proxy would
forward it: client x-ms-azure-host-* headers removed, duplicates collapsed to
the last copy, chunked bodies de-chunked, claims, date and (unless exempt)
authorization headers appended.
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
	signer, err := sign.NewSigner(*keyHex, *guid)
	if err != nil {
		return fail("--key/--guid: %v", err)
	}

	req, err := readRequest(bufio.NewReader(stdin))
	if err != nil {
		return fail("request: %v", err)
	}
	if _, err := endorse.Transform(req, endorse.Params{IsRoot: *root, Date: *date, Signer: signer}); err != nil {
		return fail("request: %v", err)
	}
	bw := bufio.NewWriter(stdout)
	if _, err := req.WriteTo(bw); err != nil {
		return fail("writing the request: %v", err)
	}
	return 0
}

func readRequest(br *bufio.Reader) (*rawhttp.Request, error) {
	req, err := rawhttp.ReadHead(br, rawhttp.Limits{})
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no request line on stdin")
		}
		return nil, err
	}
	// The proxy's strict reading of the target (authorization.md I-24):
	// what it refuses is never signed.
	if err := authz.CheckTarget(req.Target); err != nil {
		return nil, err
	}
	if err := req.ReadBody(br, endorse.BodyLimit(req.Method, req.Target)); err != nil {
		return nil, err
	}
	return req, nil
}
