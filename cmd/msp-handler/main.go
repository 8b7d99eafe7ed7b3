// Command msp-handler is the VM extension handler waagent runs: install,
// enable, disable, update, uninstall and resetstate, plus the monitor and
// supervisor that enable starts. See package handler.
package main

import (
	"os"

	"github.com/mspguest/msp/handler"
)

func main() {
	os.Exit(handler.Run(os.Args[1:], handler.OS{}, handler.Options{Stdout: os.Stdout, Stderr: os.Stderr}))
}
