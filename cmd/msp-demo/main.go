// Command msp-demo is `make demo` (issue 12 item 1): the whole protocol on
// one machine, through the real handler, agent and emulated host, as a
// table of scenarios. Run as root from the repository after `make build`:
//
//	msp-demo [-bin bin] [-manifest manifest/HandlerManifest.json] [-audit-out dist/demo-audit.jsonl]
//	         [-imds-addr 127.0.0.169:80] [-wireserver-addr 127.0.0.168:80] [-hostga-addr 127.0.0.168:32526]
//	         [-control-addr 127.0.0.1:8089]
//
// `msp-demo token-client` is the azidentity client the demo runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mspguest/msp/internal/demo"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == demo.TokenClientVerb {
		return demo.TokenClient(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("msp-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "`DIR` holding msp-hostsim, msp-handler, msp-agent and msp-demo")
	manifest := fs.String("manifest", "manifest/HandlerManifest.json", "the handler manifest (extension.json beside its directory)")
	auditOut := fs.String("audit-out", "dist/demo-audit.jsonl", "copy the agent's audit log to `FILE` (empty: do not)")
	keep := fs.Bool("keep", false, "keep the work directory for inspection")
	addrs := demo.DefaultAddrs
	fs.StringVar(&addrs.IMDS, "imds-addr", addrs.IMDS, "emulated IMDS `host:port` (loopback)")
	fs.StringVar(&addrs.WireServer, "wireserver-addr", addrs.WireServer, "emulated WireServer `host:port` (loopback)")
	fs.StringVar(&addrs.HostGA, "hostga-addr", addrs.HostGA, "emulated HostGAPlugin `host:port` (loopback)")
	fs.StringVar(&addrs.Control, "control-addr", addrs.Control, "msp-hostsim's control API `host:port` (loopback)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "msp-demo: run as root (sudo make demo): the demo loads eBPF programs and creates a cgroup")
		return 2
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(stderr, "msp-demo:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := demo.Run(ctx, demo.Options{BinDir: binDir, Manifest: *manifest, AuditOut: *auditOut, Addrs: addrs, Out: stdout, Keep: *keep})
	if len(res.Rows) > 0 {
		fmt.Fprintln(stdout)
		demo.Print(stdout, res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "msp-demo:", err)
		return 1
	}
	if res.Failed > 0 {
		return 1
	}
	return 0
}
