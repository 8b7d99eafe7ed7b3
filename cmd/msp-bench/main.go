// Command msp-bench runs the project's benchmarks that need more than
// `go test -bench`: `msp-bench proxy` measures the signing proxy against
// direct requests to msp-hostsim (issue 8 item 8); `msp-bench compare`
// puts direct requests, the real msp-agent and nginx side by side
// (issue 12 item 2). See internal/benchproxy.
package main

import (
	"fmt"
	"os"

	"github.com/mspguest/msp/internal/benchproxy"
)

const usage = `usage (as root; see -h):
  msp-bench proxy [flags]     the proxy against direct requests (make bench-proxy)
  msp-bench compare [flags]   direct, the real agent and nginx side by side (make bench)`

func main() {
	// Child processes of a run are this binary again, told their role by
	// the environment.
	if os.Getenv("MSP_BENCH_ROLE") != "" {
		os.Exit(benchproxy.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "proxy":
		os.Exit(benchproxy.Main(os.Args[2:], os.Stdout, os.Stderr))
	case "compare":
		os.Exit(benchproxy.CompareMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	fmt.Fprintln(os.Stderr, usage)
	os.Exit(2)
}
