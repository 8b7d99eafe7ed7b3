// Command mspctl is the operator's tool for the MSP agent.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mspguest/msp/agent/authz/policycli"
	"github.com/mspguest/msp/agent/doctor"
	"github.com/mspguest/msp/agent/endorse/signcli"
	"github.com/mspguest/msp/agent/metrics"
)

const usage = `usage: mspctl COMMAND [ARGS]

Commands:
  sign     apply the proxy's transformation and signature to a raw request on stdin
  policy   validate an authorization policy, or explain the decision for one request
  metrics  print the running agent's metrics (Prometheus text format)
  doctor   check the kernel, the agent's health, modes and key, and the interception
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "sign":
		return signcli.Main(args[1:], stdin, stdout, stderr)
	case "policy":
		return policycli.Main(args[1:], stdin, stdout, stderr)
	case "metrics":
		return metrics.Main(args[1:], stdout, stderr)
	case "doctor":
		return doctor.Main(args[1:], doctor.LinuxSystem(), stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mspctl: unknown command %q\n%s", args[0], usage)
	return 2
}
