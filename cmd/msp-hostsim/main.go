// Command msp-hostsim emulates the Azure host side of the Metadata Security
// Protocol (IMDS, WireServer with the secure channel, HostGAPlugin) on
// loopback addresses, verifying request signatures, with a JSON control
// API for tests. See package hostsim.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mspguest/msp/hostsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hostsim.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
