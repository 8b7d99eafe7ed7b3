package metrics

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

// DefaultSocket is where the agent serves its metrics with the default
// stateDir.
const DefaultSocket = "/var/lib/msp-agent/metrics.sock"

// Main is `mspctl metrics [--socket PATH]`: it prints the agent's metrics.
// Exit 0 on success, 1 when the agent cannot be reached, 2 on bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mspctl metrics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("socket", DefaultSocket, "the agent's metrics socket (<stateDir>/metrics.sock)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mspctl metrics: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := Fetch(ctx, *sock)
	if err != nil {
		fmt.Fprintf(stderr, "mspctl metrics: %v\n", err)
		return 1
	}
	_, _ = stdout.Write(body)
	return 0
}
