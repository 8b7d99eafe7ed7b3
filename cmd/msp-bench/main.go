// Command msp-bench runs the project's benchmarks that need more than
// `go test -bench`: `msp-bench proxy` measures the signing proxy against
// direct requests to msp-hostsim (issue 8 item 8). See internal/benchproxy.
package main

import (
	"fmt"
	"os"

	"github.com/mspguest/msp/internal/benchproxy"
)

const usage = "usage: msp-bench proxy [flags]   (as root; see -h)"

func main() {
	// Child processes of a run are this binary again, told their role by
	// the environment.
	if os.Getenv("MSP_BENCH_ROLE") != "" {
		os.Exit(benchproxy.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if len(os.Args) < 2 || os.Args[1] != "proxy" {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	os.Exit(benchproxy.Main(os.Args[2:], os.Stdout, os.Stderr))
}
