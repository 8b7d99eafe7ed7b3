package hostsim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
)

// Run is the msp-hostsim command: it parses args (without the program
// name), starts the emulator, prints the bound addresses as one JSON line
// on stdout (so a caller using port 0 learns them), serves until ctx is
// done and returns the exit code (0 ok, 1 runtime failure, 2 usage).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msp-hostsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.IMDSAddr, "imds-addr", DefaultIMDSAddr, "IMDS listen address (loopback only)")
	fs.StringVar(&cfg.WireServerAddr, "wireserver-addr", DefaultWireServerAddr, "WireServer listen address (loopback only)")
	fs.StringVar(&cfg.HostGAAddr, "hostga-addr", DefaultHostGAAddr, "HostGAPlugin listen address (loopback only)")
	fs.StringVar(&cfg.ControlAddr, "control-addr", DefaultControlAddr, "control API listen address (loopback only)")
	verifyLog := fs.String("verify-log", "", "append verification records to `FILE` as JSON lines")
	level := fs.String("log-level", "info", "log level: debug (one line per request), info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "msp-hostsim: unexpected argument %q: every setting is a flag (see -h)\n", fs.Arg(0))
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	lv, err := logrus.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(stderr, "msp-hostsim: --log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	log.SetLevel(lv)
	switch *format {
	case "text":
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		fmt.Fprintf(stderr, "msp-hostsim: --log-format %q: want text or json\n", *format)
		return 2
	}
	cfg.Log = log
	if *verifyLog != "" {
		f, err := os.OpenFile(*verifyLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "msp-hostsim: --verify-log: %v\n", err)
			return 1
		}
		defer f.Close()
		cfg.VerifyLog = f
	}
	for _, a := range []struct{ flag, addr string }{
		{"--imds-addr", cfg.IMDSAddr}, {"--wireserver-addr", cfg.WireServerAddr},
		{"--hostga-addr", cfg.HostGAAddr}, {"--control-addr", cfg.ControlAddr},
	} {
		if err := checkAddr(a.flag, a.addr); err != nil {
			fmt.Fprintf(stderr, "msp-hostsim: %v\n", err)
			return 2
		}
	}
	e, err := Start(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "msp-hostsim: %v\n", err)
		return 1
	}
	b, _ := json.Marshal(e.Addrs())
	fmt.Fprintf(stdout, "%s\n", b)
	<-ctx.Done()
	log.Info("shutting down")
	if err := e.Close(); err != nil {
		log.WithError(err).Warn("control API shutdown")
	}
	return 0
}
